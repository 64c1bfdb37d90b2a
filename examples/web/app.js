// wsqueue test client: connects to any WebSocket server, logs every event, and shows
// the chat_server's JSON messages as a chat. Plain JavaScript, no dependencies.
"use strict";

// Bounds that keep the page responsive when a server sends a lot (or a lot at once).
const MAX_ENTRIES = 10000;
const MAX_SHOWN_CHARS = 65536;
const MAX_SHOWN_BYTES = 64;

const $ = (id) => document.getElementById(id);
const ui = {
  url: $("url"),
  connect: $("connect"),
  disconnect: $("disconnect"),
  message: $("message"),
  send: $("send"),
  binary: $("binary"),
  status: $("status"),
  log: $("log"),
  clear: $("clear"),
  chat: $("chat"),
  chatHint: $("chat-hint"),
  me: $("me"),
};

let socket = null;
let myUser = null;

function defaultUrl() {
  if (!location.host) return "ws://127.0.0.1:9001/"; // opened as a file
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
}

function setState(state, text, clean = false) {
  ui.status.dataset.state = state;
  // A close both sides asked for (1000, or 1001 going away) is not an error.
  ui.status.dataset.clean = String(clean);
  ui.status.textContent = text;
  const busy = state === "connecting" || state === "open" || state === "closing";
  ui.connect.disabled = busy;
  ui.url.disabled = busy;
  ui.disconnect.disabled = !(state === "connecting" || state === "open");
  ui.send.disabled = state !== "open";
}

function shorten(text) {
  if (text.length <= MAX_SHOWN_CHARS) return text;
  return `${text.slice(0, MAX_SHOWN_CHARS)}… (${text.length - MAX_SHOWN_CHARS} more characters)`;
}

function time() {
  const d = new Date();
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// Appends one entry, keeping the view pinned to the bottom unless the user scrolled up.
function append(list, item) {
  const pinned = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(item);
  while (list.childElementCount > MAX_ENTRIES) list.firstElementChild.remove();
  if (pinned) list.scrollTop = list.scrollHeight;
}

function log(kind, text, extraClass = "") {
  const item = document.createElement("li");
  item.className = `entry ${kind} ${extraClass}`.trim();
  const when = document.createElement("time");
  when.textContent = time();
  const label = document.createElement("span");
  label.className = "kind";
  label.textContent = kind;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(when, label, body);
  append(ui.log, item);
}

function describeBinary(bytes) {
  const hex = Array.from(bytes.subarray(0, MAX_SHOWN_BYTES), (b) => b.toString(16).padStart(2, "0")).join(" ");
  const more = bytes.length > MAX_SHOWN_BYTES ? " …" : "";
  let text = "";
  try {
    text = ` "${shorten(new TextDecoder("utf-8", { fatal: true }).decode(bytes))}"`;
  } catch {
    // Not UTF-8: the hex dump says it all.
  }
  return `binary, ${bytes.length} bytes:${text} [${hex}${more}]`;
}

// ---- chat view ---------------------------------------------------------------------

function userName(n) {
  return n === myUser ? `user ${n} (you)` : `user ${n}`;
}

function chatLine(kind, who, text) {
  ui.chatHint.hidden = true;
  const item = document.createElement("li");
  item.className = `line ${kind}`;
  if (who !== null) {
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    item.append(name);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  append(ui.chat, item);
}

// chat_server speaks one JSON object per message; anything else is not chat.
function showChat(text) {
  if (!text.startsWith("{")) return;
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return;
  }
  if (typeof msg !== "object" || msg === null || typeof msg.text !== "string") return;
  switch (msg.type) {
    case "welcome":
      myUser = msg.you;
      ui.me.textContent = `you are user ${myUser}`;
      chatLine("system", null, msg.text);
      break;
    case "join":
    case "leave":
      chatLine("system", null, msg.text);
      break;
    case "chat":
      chatLine(msg.from === myUser ? "chat mine" : "chat", userName(msg.from), msg.text);
      break;
    default:
      break;
  }
}

// ---- connection --------------------------------------------------------------------

function connect() {
  const url = ui.url.value.trim();
  if (!/^wss?:\/\//i.test(url)) {
    log("error", `not a WebSocket URL (ws:// or wss://): ${url}`);
    return;
  }
  let ws;
  try {
    ws = new WebSocket(url);
  } catch (err) {
    log("error", `cannot connect to ${url}: ${err.message}`);
    return;
  }
  ws.binaryType = "arraybuffer";
  socket = ws;
  myUser = null;
  ui.me.textContent = "";
  // A new connection is a new chat session: old lines (and their "(you)") would lie.
  ui.chat.replaceChildren(ui.chatHint);
  ui.chatHint.hidden = false;
  setState("connecting", "Connecting…");
  log("info", `connecting to ${url}`);

  ws.addEventListener("open", () => {
    if (ws !== socket) return;
    setState("open", `Open: ${url}`);
    log("open", ws.protocol ? `connected (subprotocol ${ws.protocol})` : "connected");
    ui.message.focus();
  });
  ws.addEventListener("message", (ev) => {
    if (typeof ev.data === "string") {
      log("received", shorten(ev.data));
      showChat(ev.data);
    } else {
      log("received", describeBinary(new Uint8Array(ev.data)));
    }
  });
  ws.addEventListener("error", () => {
    // Browsers give no detail here on purpose; the close event that follows has the code.
    log("error", "connection error");
  });
  ws.addEventListener("close", (ev) => {
    const reason = ev.reason ? ` reason "${ev.reason}"` : "";
    const clean = ev.wasClean && (ev.code === 1000 || ev.code === 1001);
    log("close", `code ${ev.code}${reason}, ${ev.wasClean ? "clean" : "not clean"}`, clean ? "clean" : "");
    if (ws !== socket) return;
    socket = null;
    setState("closed", `Closed (code ${ev.code})`, clean);
  });
}

function disconnect() {
  if (!socket) return;
  log("info", "closing with code 1000");
  setState("closing", "Closing…");
  socket.close(1000, "bye");
}

function send() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const text = ui.message.value;
  if (ui.binary.checked) {
    const bytes = new TextEncoder().encode(text);
    socket.send(bytes);
    log("sent", describeBinary(bytes));
  } else {
    socket.send(text);
    log("sent", shorten(text));
  }
  ui.message.value = "";
  ui.message.focus();
}

ui.url.value = defaultUrl();
setState("disconnected", "Disconnected");

$("connect-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  connect();
});
ui.disconnect.addEventListener("click", disconnect);
$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send();
});
ui.message.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    send();
  }
});
ui.clear.addEventListener("click", () => ui.log.replaceChildren());
