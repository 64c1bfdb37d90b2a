// Interop: Debian's headless Chromium against build/chat_server (serving examples/web)
// and build/echo_server, driven with playwright-core.
//
//   WSQ_CHAT_URL=http://127.0.0.1:PORT/ WSQ_ECHO_URL=ws://127.0.0.1:PORT/ node browser_test.mjs
//
// Over TLS (tests/interop/run.sh wss): https:// and wss:// URLs, and WSQ_TLS_CERT names
// the servers' certificate. Chromium is then told to accept that one key
// (--ignore-certificate-errors-spki-list with its SPKI hash): every other certificate
// check still applies, and no other certificate is accepted.
//
// Prints "PASS name" or "FAIL name: why" per check and exits non-zero if any failed.
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const CHAT_URL = process.env.WSQ_CHAT_URL;
const ECHO_URL = process.env.WSQ_ECHO_URL;
const CHROMIUM = process.env.WSQ_CHROMIUM || "/usr/bin/chromium";
const TLS_CERT = process.env.WSQ_TLS_CERT;
// The page's WebSocket URL for the page's own address: ws:// for http://, wss:// for https://.
const wsUrlOf = (httpUrl) => httpUrl.replace(/^http(s?):/, "ws$1:");

// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's
// --ignore-certificate-errors-spki-list takes.
function spkiHash(pemFile) {
  const spki = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}
// Hang guards; never speed requirements.
const WAIT_MS = 30_000;
const WHOLE_RUN_MS = 180_000;

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${String(err?.message ?? err).split("\n")[0]}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// A page of the chat app, with everything it reports that a person would notice.
async function openChatPage(context, label) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  page.on("pageerror", (err) => problems.push(`${label}: page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${label}: console error: ${msg.text()}`);
  });
  page.on("response", (res) => {
    if (res.status() >= 400) problems.push(`${label}: ${res.status()} for ${res.url()}`);
  });
  const res = await page.goto(CHAT_URL, { waitUntil: "load" });
  assert(res && res.status() === 200, `GET ${CHAT_URL} answered ${res?.status()}`);
  return { page, problems };
}

async function connectPage(page) {
  await page.click("#connect");
  await page.locator('#status[data-state="open"]').waitFor();
  // chat_server welcomes each user with its number; the page shows it in #me.
  await page.locator("#me", { hasText: "you are user" }).waitFor();
  const me = await page.locator("#me").textContent();
  const n = Number(/you are user (\d+)/.exec(me)?.[1]);
  assert(Number.isInteger(n), `no user number in "${me}"`);
  return n;
}

async function sendThroughForm(page, text) {
  await page.fill("#message", text);
  await page.click("#send");
}

// The log shows each received message as it came: chat_server's JSON (whose "text"
// carries ours, escaped) or the plain echo.
async function waitForReceived(page, text) {
  await page.waitForFunction(
    (want) =>
      Array.from(document.querySelectorAll("#log li.entry.received .text")).some((el) => {
        const shown = el.textContent;
        if (shown === want) return true;
        try {
          return JSON.parse(shown).text === want;
        } catch {
          return false;
        }
      }),
    text,
    { timeout: WAIT_MS },
  );
}

async function main() {
  if (!CHAT_URL || !ECHO_URL) {
    console.log("FAIL setup: WSQ_CHAT_URL and WSQ_ECHO_URL must be set (run tests/interop/run.sh)");
    return 1;
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: WAIT_MS * 2,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...(TLS_CERT ? [`--ignore-certificate-errors-spki-list=${spkiHash(TLS_CERT)}`] : []),
    ],
  });
  console.log(`chromium ${browser.version()}`);
  try {
    const context = await browser.newContext();
    const tag = Math.random().toString(36).slice(2, 8);
    let one, two, userOne, userTwo;

    await check(`chat page loads from chat_server with its ${wsUrlOf(CHAT_URL).split(":")[0]}:// URL filled in`, async () => {
      one = await openChatPage(context, "page 1");
      const expected = wsUrlOf(CHAT_URL);
      const url = await one.page.inputValue("#url");
      assert(url === expected, `#url is "${url}", expected "${expected}"`);
      assert(await one.page.isDisabled("#send"), "Send is enabled before connecting");
    });

    await check("Connect opens the WebSocket and the server welcomes the user", async () => {
      userOne = await connectPage(one.page);
      assert(await one.page.isEnabled("#send"), "Send stays disabled while open");
    });

    const first = `hello from page 1 ${tag} — héllo ✓ 😀`;
    await check("a message sent through the form comes back in the page's log", async () => {
      await sendThroughForm(one.page, first);
      await waitForReceived(one.page, first);
      // The chat panel renders the broadcast JSON as the user's own line.
      await one.page.locator("#chat li.line.chat.mine", { hasText: first }).waitFor();
    });

    await check("a second page connects as a different user", async () => {
      two = await openChatPage(context, "page 2");
      userTwo = await connectPage(two.page);
      assert(userTwo !== userOne, `both pages are user ${userOne}`);
      // Page 1 learns that user 2 joined.
      await one.page.locator("#chat li.line.system", { hasText: `user ${userTwo} joined` }).waitFor();
    });

    const second = `page 1 to everyone ${tag} <b>not bold</b> "quoted" \\ back`;
    await check("a chat message from page 1 appears in page 2", async () => {
      await sendThroughForm(one.page, second);
      await waitForReceived(two.page, second);
      const line = two.page.locator("#chat li.line.chat", { hasText: second }).first();
      await line.waitFor();
      const who = await line.locator(".who").textContent();
      assert(who === `user ${userOne}`, `page 2 shows the sender as "${who}"`);
      // Text, not markup: the server's JSON escaping and the page's rendering agree.
      assert((await two.page.locator("#chat b").count()) === 0, "markup from a message was rendered");
    });

    const reply = `page 2 replies ${tag}`;
    await check("a chat message from page 2 appears in page 1", async () => {
      await sendThroughForm(two.page, reply);
      await waitForReceived(one.page, reply);
      await waitForReceived(two.page, reply);
    });

    await check("Chromium negotiates permessage-deflate with the demo and with echo_server", async () => {
      // RFC 7692: Chromium offers it on every connection; the servers' default accepts.
      const extensions = await one.page.evaluate(
        async ({ urls, waitMs }) =>
          Promise.all(
            urls.map(
              (url) =>
                new Promise((resolve, reject) => {
                  const ws = new WebSocket(url);
                  const guard = setTimeout(() => reject(new Error(`no open from ${url}`)), waitMs);
                  ws.onerror = () => reject(new Error(`WebSocket error from ${url}`));
                  ws.onopen = () => {
                    clearTimeout(guard);
                    resolve(ws.extensions);
                    ws.close(1000);
                  };
                }),
            ),
          ),
        { urls: [wsUrlOf(CHAT_URL), ECHO_URL], waitMs: WAIT_MS },
      );
      const want = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
      for (const e of extensions) assert(e === want, `extensions "${e}", expected "${want}"`);
    });

    await check("a raw WebSocket echoes a 1 MiB binary ArrayBuffer identically", async () => {
      const result = await one.page.evaluate(
        async ({ url, waitMs }) => {
          const size = 1024 * 1024;
          const sent = new Uint8Array(size);
          // getRandomValues fills at most 64 KiB per call.
          for (let i = 0; i < size; i += 65536) crypto.getRandomValues(sent.subarray(i, i + 65536));
          const ws = new WebSocket(url);
          ws.binaryType = "arraybuffer";
          const got = await new Promise((resolve, reject) => {
            const guard = setTimeout(() => reject(new Error("no echo")), waitMs);
            ws.onerror = () => reject(new Error("WebSocket error"));
            ws.onclose = (ev) => reject(new Error(`closed with ${ev.code} before the echo`));
            ws.onopen = () => ws.send(sent.buffer);
            ws.onmessage = (ev) => {
              clearTimeout(guard);
              resolve(ev.data);
            };
          });
          const closed = new Promise((resolve) => {
            ws.onclose = (ev) => resolve({ code: ev.code, clean: ev.wasClean });
          });
          ws.close(1000, "done");
          const close = await closed;
          if (!(got instanceof ArrayBuffer)) return { error: `echo is a ${typeof got}, not binary` };
          const back = new Uint8Array(got);
          let firstDiff = -1;
          if (back.length === size) {
            for (let i = 0; i < size; i++) {
              if (back[i] !== sent[i]) {
                firstDiff = i;
                break;
              }
            }
          }
          return { length: back.length, firstDiff, close };
        },
        { url: ECHO_URL, waitMs: WAIT_MS },
      );
      assert(!result.error, result.error);
      assert(result.length === 1024 * 1024, `echo is ${result.length} bytes`);
      assert(result.firstDiff === -1, `echo differs at byte ${result.firstDiff}`);
      assert(result.close.code === 1000 && result.close.clean, `close ${JSON.stringify(result.close)}`);
    });

    await check("a raw WebSocket echoes 1 MiB of multilingual text identically", async () => {
      const result = await one.page.evaluate(
        async ({ url, waitMs }) => {
          const text = "wsqueue ✓ 日本語 😀 ".repeat(1 << 15).slice(0, 1 << 20);
          const ws = new WebSocket(url);
          const got = await new Promise((resolve, reject) => {
            const guard = setTimeout(() => reject(new Error("no echo")), waitMs);
            ws.onerror = () => reject(new Error("WebSocket error"));
            ws.onopen = () => ws.send(text);
            ws.onmessage = (ev) => {
              clearTimeout(guard);
              resolve(ev.data);
            };
          });
          ws.close(1000);
          return { same: got === text, kind: typeof got, length: got.length };
        },
        { url: ECHO_URL, waitMs: WAIT_MS },
      );
      assert(result.kind === "string", `echo is a ${result.kind}`);
      assert(result.same, `echo differs (length ${result.length})`);
    });

    await check("Disconnect closes cleanly with 1000 and page 2 sees the user leave", async () => {
      await one.page.click("#disconnect");
      await one.page.locator('#status[data-state="closed"]').waitFor();
      const last = await one.page.locator("#log li.entry.close").last().textContent();
      assert(/code 1000\b/.test(last) && /\bclean\b/.test(last) && !/not clean/.test(last), `log says "${last}"`);
      await two.page.locator("#chat li.line.system", { hasText: `user ${userOne} left` }).waitFor();
      const clean = await one.page.locator("#status").getAttribute("data-clean");
      assert(clean === "true", `a clean 1000 close is shown as an error (data-clean=${clean})`);
      assert((await one.page.locator("#log li.entry.close.clean").count()) >= 1, "the clean close is not marked clean in the log");
    });

    await check("a URL that is not ws:// or wss:// is refused on the page", async () => {
      const url = await one.page.inputValue("#url");
      await one.page.fill("#url", "http://127.0.0.1:1/");
      await one.page.click("#connect");
      await one.page.locator("#log li.entry.error", { hasText: "not a WebSocket URL" }).waitFor();
      const state = await one.page.locator("#status").getAttribute("data-state");
      assert(state === "closed", `the page tried to connect anyway (state ${state})`);
      await one.page.fill("#url", url);
    });

    await check("Reconnecting starts a fresh chat: no old lines, no stale (you)", async () => {
      const before = await one.page.locator("#chat li.line").count();
      assert(before > 0, "page 1 had no chat lines to clear");
      await one.page.click("#connect");
      await one.page.locator('#status[data-state="open"]').waitFor();
      await one.page.locator("#me", { hasText: "you are user" }).waitFor();
      await one.page.locator("#chat li.line.system").first().waitFor();
      const stale = await one.page.locator("#chat li.line.chat").count();
      assert(stale === 0, `${stale} chat lines from the previous connection are still shown`);
      const oldYou = await one.page.locator("#chat .who", { hasText: `user ${userOne} (you)` }).count();
      assert(oldYou === 0, "the previous connection's (you) label is still shown");
    });

    await check("no page errors, console errors or failed requests", async () => {
      const problems = [...(one?.problems ?? []), ...(two?.problems ?? [])];
      assert(problems.length === 0, problems.join("; "));
    });
  } finally {
    await browser.close();
  }
  return failed ? 1 : 0;
}

setTimeout(() => {
  console.log(`FAIL browser run: still running after ${WHOLE_RUN_MS / 1000} s`);
  process.exit(1);
}, WHOLE_RUN_MS).unref();

main().then(
  (code) => {
    console.log(`browser checks: ${passed} passed, ${failed} failed`);
    process.exit(code || (failed ? 1 : 0));
  },
  (err) => {
    console.log(`FAIL browser run: ${err?.stack ?? err}`);
    process.exit(1);
  },
);
