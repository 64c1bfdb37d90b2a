// Compressed echo load: N `ws` clients with permessage-deflate (no context takeover
// either way, compressing every message, level 6) send realistic JSON text messages of
// SIZE bytes, WINDOW in flight each, and check every echo. Prints one JSON line.
//
//   node client.mjs URL [--conns 20] [--size 1024] [--window 4] [--secs 5] [--warmup 1]
//
// The client runs the same code against every server, so its own cost (compressing
// and inflating in one Node thread) is a constant; on a 2-core machine it is also a
// ceiling: read the figures as "at most this fast", side by side.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../tests/interop/node/package.json"));
const WebSocket = require("ws");

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const conns = opt("conns", 20);
const size = opt("size", 1024);
const window = opt("window", 4);
const secs = opt("secs", 5);
const warmup = opt("warmup", 1);

function jsonText(n, seed) {
  const names = ["ada", "grace", "linus", "barbara", "ken", "margaret", "dennis"];
  const words = ["hello", "deploy", "fixed", "the", "build", "is", "green", "again", "lunch?", "merged", "flaky", "test"];
  let x = seed * 2654435761 + 1;
  const next = (m) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % m;
  };
  let out = "[";
  let id = 1000;
  while (out.length < n) {
    const text = Array.from({ length: 3 + next(8) }, () => words[next(words.length)]).join(" ");
    out += `{"id":${id},"user":"${names[next(names.length)]}","ts":${1733300000 + next(100000)},"text":"${text}","read":${next(2) === 1}},`;
    id += 1 + next(3);
  }
  return out.slice(0, n);
}

const messages = Array.from({ length: 16 }, (_, i) => jsonText(size, i + 1));
let counting = false;
let echoed = 0;
let errors = 0;
let negotiated = 0;

async function client(i) {
  const ws = new WebSocket(url, {
    maxPayload: 64 << 20,
    perMessageDeflate: {
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      threshold: 0,
      zlibDeflateOptions: { level: 6 },
    },
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  if (ws.extensions.includes("permessage-deflate")) negotiated++;
  const sent = [];
  let seq = i;
  const sendOne = () => {
    const m = messages[seq++ % messages.length];
    sent.push(m);
    ws.send(m);
  };
  ws.on("message", (data) => {
    const want = sent.shift();
    if (data.toString() !== want) errors++;
    if (counting) echoed++;
    if (!stopping) sendOne();
  });
  for (let k = 0; k < window; k++) sendOne();
  return ws;
}

let stopping = false;
const sockets = await Promise.all(Array.from({ length: conns }, (_, i) => client(i)));
await new Promise((r) => setTimeout(r, warmup * 1000));
counting = true;
const t0 = process.hrtime.bigint();
await new Promise((r) => setTimeout(r, secs * 1000));
counting = false;
const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
stopping = true;
for (const ws of sockets) ws.terminate();
console.log(
  JSON.stringify({ url, conns, size, window, negotiated, errors, echoes_per_s: Math.round(echoed / elapsed) }),
);
process.exit(errors === 0 && negotiated === conns ? 0 : 1);
