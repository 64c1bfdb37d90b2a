// Echo server on Node `ws` with permessage-deflate as wsqueue's default shared mode:
// no context takeover either way, level 6, messages of 64 bytes and more compressed.
//   node ws_echo.mjs   prints "listening on 127.0.0.1:PORT"
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../tests/interop/node/package.json"));
const { WebSocketServer } = require("ws");

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: 0,
  maxPayload: 64 << 20,
  perMessageDeflate: {
    serverNoContextTakeover: true,
    clientNoContextTakeover: true,
    threshold: 64,
    zlibDeflateOptions: { level: 6 },
  },
});
wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
wss.on("listening", () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
