// Interop: the Node `ws` client against build/echo_server (address in WSQ_ECHO_URL).
// Run with `node --test test.mjs`; tests/interop/run.sh starts the server.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

const URL = process.env.WSQ_ECHO_URL;
const MiB = 1024 * 1024;
// Hang guard per wait; never a speed requirement.
const HANG_GUARD_MS = 60_000;

function withTimeout(promise, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), HANG_GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// Every client ever opened: a failed test leaves its sockets open, and open sockets
// would keep this process alive after the last test.
const opened = new Set();
after(() => {
  for (const ws of opened) ws.terminate();
});

// A ws client whose messages, pongs and close are queued so tests can await them in order.
class Client {
  static async open(options = {}) {
    assert.ok(URL, "WSQ_ECHO_URL is not set (run tests/interop/run.sh)");
    const c = new Client(new WebSocket(URL, { maxPayload: 64 * MiB, ...options }));
    await withTimeout(
      new Promise((resolve, reject) => {
        c.ws.once("open", resolve);
        c.ws.once("error", reject);
      }),
      "open",
    );
    return c;
  }

  constructor(ws) {
    opened.add(ws);
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    this.error = null;
    ws.on("message", (data, isBinary) => this.#deliver({ data: Buffer.from(data), isBinary }));
    this.firstPong = new Promise((resolve) => ws.once("pong", (data) => resolve(Buffer.from(data))));
    ws.on("error", (err) => {
      this.error = err;
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w.reject(new Error(`closed with ${code} before a message arrived`));
      });
    });
  }

  #deliver(msg) {
    const w = this.waiters.shift();
    if (w) w.resolve(msg);
    else this.inbox.push(msg);
  }

  next() {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    return withTimeout(
      new Promise((resolve, reject) => this.waiters.push({ resolve, reject })),
      "a message",
    );
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) => this.ws.send(data, options, (err) => (err ? reject(err) : resolve())));
  }

  async close(code, reason) {
    this.ws.close(code, reason);
    return withTimeout(this.closed, "close");
  }
}

async function echoOnce(payload, { binary }) {
  const c = await Client.open();
  await c.send(payload, { binary });
  const got = await c.next();
  await c.close(1000);
  return got;
}

test("binary messages of many sizes echo byte for byte", async () => {
  for (const size of [0, 1, 125, 126, 65535, 65536, 100_000]) {
    const payload = randomBytes(size);
    const got = await echoOnce(payload, { binary: true });
    assert.equal(got.isBinary, true, `size ${size}: came back as text`);
    assert.ok(got.data.equals(payload), `size ${size}: payload differs`);
  }
});

test("text messages echo as identical text", async () => {
  for (const text of ["", "hello", "héllo wörld €", "😀".repeat(5000), "x".repeat(70_000)]) {
    const got = await echoOnce(text, { binary: false });
    assert.equal(got.isBinary, false, "text came back as binary");
    assert.equal(got.data.toString("utf8"), text);
  }
});

test("large binary and text messages (8 MiB) echo intact", async () => {
  const c = await Client.open();
  const bin = randomBytes(8 * MiB);
  const text = "0123456789abcdef".repeat((8 * MiB) / 16);
  await c.send(bin, { binary: true });
  await c.send(text, { binary: false });
  const a = await c.next();
  const b = await c.next();
  assert.equal(a.isBinary, true);
  assert.ok(a.data.equals(bin), "8 MiB binary differs");
  assert.equal(b.isBinary, false);
  assert.equal(b.data.toString("utf8"), text);
  await c.close(1000);
});

test("a fragmented binary message is reassembled and echoed once", async () => {
  // No compression: fragments must reach the server as the frames we send.
  const c = await Client.open({ perMessageDeflate: false });
  const pieces = [randomBytes(10), randomBytes(0), randomBytes(70_000), randomBytes(125)];
  for (const [i, p] of pieces.entries()) {
    await c.send(p, { binary: true, fin: i === pieces.length - 1 });
  }
  // A marker after it: if the server echoed each fragment separately, the second
  // message read would not be the marker.
  await c.send("marker", { binary: false });
  const whole = await c.next();
  assert.equal(whole.isBinary, true);
  assert.ok(whole.data.equals(Buffer.concat(pieces)), "reassembled message differs");
  const marker = await c.next();
  assert.equal(marker.isBinary, false);
  assert.equal(marker.data.toString(), "marker");
  await c.close(1000);
});

test("a fragmented text message split inside a UTF-8 character is accepted", async () => {
  const c = await Client.open({ perMessageDeflate: false });
  const text = "price: 5€ 😀";
  const bytes = Buffer.from(text, "utf8");
  // "€" is E2 82 AC, "😀" is F0 9F 98 80: cut through both (RFC 6455 §5.6 validates
  // the whole message, not each frame).
  const euro = bytes.indexOf(0xe2);
  const emoji = bytes.indexOf(0xf0);
  const cuts = [0, euro + 1, euro + 2, emoji + 3, bytes.length];
  for (let i = 0; i + 1 < cuts.length; i++) {
    await c.send(bytes.subarray(cuts[i], cuts[i + 1]), { binary: false, fin: i + 2 === cuts.length });
  }
  const got = await c.next();
  assert.equal(got.isBinary, false);
  assert.equal(got.data.toString("utf8"), text);
  await c.close(1000);
});

test("a ping is answered with a pong carrying the same payload", async () => {
  const c = await Client.open();
  const payload = Buffer.from("are you there?");
  c.ws.ping(payload);
  // A round trip after the ping: the pong is sent when the ping is read, and the
  // echo can only follow that read.
  await c.send("after ping");
  assert.equal((await c.next()).data.toString(), "after ping");
  const pong = await withTimeout(c.firstPong, "the pong");
  assert.ok(pong.equals(payload), `pong payload ${pong}`);
  await c.close(1000);
});

test("close code from the client is echoed back by the server", async () => {
  for (const [code, reason] of [
    [1000, "normal"],
    [4001, "application specific"],
    [3000, "registered range"],
  ]) {
    const c = await Client.open();
    await c.send("hi");
    assert.equal((await c.next()).data.toString(), "hi");
    const closed = await c.close(code, reason);
    // RFC 6455 §5.5.1: the reply typically echoes the code; the reason may differ,
    // but it must be valid UTF-8 text (ws checks) and fit a control frame.
    assert.equal(closed.code, code);
    assert.ok(Buffer.byteLength(closed.reason) <= 123);
    assert.equal(c.error, null, `ws reported ${c.error}`);
  }
});

test("a close without a code is answered and reported as 1005", async () => {
  const c = await Client.open();
  const closed = await c.close();
  // §7.1.5: no status code in the close frame is reported locally as 1005.
  assert.equal(closed.code, 1005);
  assert.equal(c.error, null, `ws reported ${c.error}`);
});

test("a text message that is not UTF-8 is refused with close 1007", async () => {
  const c = await Client.open({ perMessageDeflate: false });
  // ws sends a Buffer as text unchecked: 0xC3 starts a 2-byte sequence, 0x28 is no
  // continuation byte (RFC 6455 §8.1: fail the connection, §7.4.1: code 1007).
  await c.send(Buffer.from([0x61, 0xc3, 0x28, 0x62]), { binary: false });
  const closed = await withTimeout(c.closed, "the server's close");
  assert.equal(closed.code, 1007);
  assert.equal(c.inbox.length, 0, "the invalid message was echoed");
});

test("200 concurrent clients each get only their own echoes, in order", async () => {
  const clients = await Promise.all(Array.from({ length: 200 }, () => Client.open()));
  await Promise.all(
    clients.map(async (c, n) => {
      for (let i = 0; i < 20; i++) await c.send(`client ${n} message ${i}`);
      for (let i = 0; i < 20; i++) {
        assert.equal((await c.next()).data.toString(), `client ${n} message ${i}`);
      }
    }),
  );
  const closes = await Promise.all(clients.map((c) => c.close(1000)));
  assert.ok(closes.every((c) => c.code === 1000));
});

// ---- permessage-deflate (RFC 7692) -------------------------------------------------------
// echo_server runs in its default mode (shared: no context takeover either way). `ws`
// offers permessage-deflate by default; threshold 0 makes it compress every message.

function jsonText(size, seed) {
  let out = "";
  for (let i = seed; out.length < size; i++) {
    out += `{"id":${i % 1000},"user":"u${i % 17}","text":"message ${i}","ok":true},`;
  }
  return out.slice(0, size);
}

// The parameters the server's response granted (ws keeps them on the extension).
function granted(c) {
  return c.ws._extensions["permessage-deflate"]?.params;
}

test("permessage-deflate is negotiated with no context takeover either way", async () => {
  const c = await Client.open({ perMessageDeflate: { threshold: 0 } });
  assert.equal(c.ws.extensions, "permessage-deflate");
  const p = granted(c);
  assert.equal(p.server_no_context_takeover, true);
  assert.equal(p.client_no_context_takeover, true);
  await c.close(1000);
});

test("compressed messages of many sizes echo intact", async () => {
  const c = await Client.open({ perMessageDeflate: { threshold: 0 } });
  for (const size of [0, 1, 63, 64, 125, 126, 65535, 65536, 1_000_000, 8 * MiB]) {
    const text = jsonText(size, size);
    await c.send(text, { binary: false });
    const got = await c.next();
    assert.equal(got.isBinary, false);
    assert.equal(got.data.toString("utf8"), text, `text of ${size}`);
    const bin = randomBytes(size);
    await c.send(bin, { binary: true });
    const back = await c.next();
    assert.equal(back.isBinary, true);
    assert.ok(back.data.equals(bin), `binary of ${size}`);
  }
  await c.close(1000);
});

test("a fragmented compressed message is reassembled and echoed once", async () => {
  // RFC 7692 §6.1: ws sets RSV1 on the first fragment and compresses all of them as
  // one stream.
  const c = await Client.open({ perMessageDeflate: { threshold: 0 } });
  const pieces = [jsonText(3000, 1), jsonText(10, 2), jsonText(70_000, 3), jsonText(1, 4)];
  for (const [i, p] of pieces.entries()) {
    await c.send(p, { binary: false, compress: true, fin: i === pieces.length - 1 });
  }
  await c.send("marker", { binary: false });
  const whole = await c.next();
  assert.equal(whole.data.toString("utf8"), pieces.join(""));
  const marker = await c.next();
  assert.equal(marker.data.toString(), "marker");
  await c.close(1000);
});

test("every offer parameter combination echoes many messages", async () => {
  // RFC 7692 §7.1, the combinations of Autobahn 13.x (client window 8 left out: Node's
  // zlib cannot compress with it). "Not asked" is ws's default, undefined: an explicit
  // clientNoContextTakeover: false makes ws refuse any server that imposes it, as the
  // shared mode does (RFC 7692 §7.1.1.2 lets a server do so).
  for (const serverNoContextTakeover of [undefined, true]) {
    for (const clientNoContextTakeover of [undefined, true]) {
      for (const serverMaxWindowBits of [undefined, 8, 9, 15]) {
        for (const clientMaxWindowBits of [undefined, true, 9, 15]) {
          const options = { threshold: 0, serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits };
          const what = JSON.stringify(options);
          const c = await Client.open({ perMessageDeflate: options });
          const p = granted(c);
          assert.ok(p, `not negotiated: ${what}`);
          if (serverMaxWindowBits) assert.ok(p.server_max_window_bits <= serverMaxWindowBits, what);
          for (let i = 0; i < 8; i++) {
            const msg = jsonText(50 * 4 ** (i % 5), i);
            await c.send(msg, { binary: false });
            const got = await c.next();
            assert.equal(got.data.toString("utf8"), msg, `${what} message ${i}`);
          }
          await c.close(1000);
        }
      }
    }
  }
});
