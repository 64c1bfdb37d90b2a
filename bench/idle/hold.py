#!/usr/bin/env python3
"""Holds N idle WebSocket connections to a server and measures what they cost it.

    hold.py PORT SERVER_PID [--conns 10000] [--secs 30] [--settle 2] [--label NAME]
            [--deflate] [--message BYTES]

Opens the connections one by one (plain sockets, RFC 6455 handshake, every answer
checked for 101 and the right Sec-WebSocket-Accept), lets the server settle, then
samples the server's resident memory and CPU time from /proc over --secs seconds while
the connections stay silent. Prints one JSON line:

    rss_per_conn_kib   (RSS with the connections open - RSS before) / conns
    idle_cpu_pct       server CPU time over the idle period / its length, in % of a core
    opened, failed     handshakes that succeeded / failed

--deflate offers permessage-deflate (RFC 7692) in every handshake; --message sends one
JSON text message of that size on each connection (compressed, when --deflate was
agreed) and reads its echo before the idle period, so that whatever the server keeps
per connection after a message exchange (compression contexts included) is counted.

Standard library only, so it runs on any python3. The client's own cost does not enter
the figures: they are read from the server's /proc entries, not from this process.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import sys
import struct
import time
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_cpu_secs(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the parenthesised command name, which may hold spaces.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def json_message(size: int) -> bytes:
    unit = b'{"id":42,"user":"grace","text":"an idle connection","ok":true},'
    return (unit * (size // len(unit) + 1))[:size]


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first_byte, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first_byte, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first_byte, 0x80 | 127, n)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


def recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed while reading a frame")
        data += chunk
    return data


def exchange(s: socket.socket, size: int, deflate: bool) -> None:
    """One text message and its echo (RFC 7692 §7.2.1: compressed, tail removed)."""
    payload = json_message(size)
    if deflate:
        z = zlib.compressobj(wbits=-15)
        body = z.compress(payload) + z.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(masked_frame(0xC1, body[:-4]))
    else:
        s.sendall(masked_frame(0x81, payload))
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(s, 8))[0]
    recv_exact(s, n)
    if b0 & 0x0F != 1:
        raise ConnectionError(f"expected the text echo, got opcode {b0 & 0x0F}")


def open_connection(port: int, deflate: bool = False, message: int = 0) -> socket.socket:
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        + (OFFER if deflate else b"")
        + b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            s.close()
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101") or accept not in head:
        s.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    if message:
        agreed = b"permessage-deflate" in head
        exchange(s, message, agreed)
    return s


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--secs", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--label", default="")
    p.add_argument("--deflate", action="store_true")
    p.add_argument("--message", type=int, default=0)
    a = p.parse_args()

    rss_before = server_rss_kib(a.pid)
    conns, failed, first_error = [], 0, ""
    for _ in range(a.conns):
        try:
            conns.append(open_connection(a.port, a.deflate, a.message))
        except OSError as e:
            failed += 1
            first_error = first_error or str(e)
    time.sleep(a.settle)
    rss_open = server_rss_kib(a.pid)
    cpu0, t0 = server_cpu_secs(a.pid), time.monotonic()
    time.sleep(a.secs)
    cpu1, t1 = server_cpu_secs(a.pid), time.monotonic()
    # Still open? A server that dropped idle connections would make the figures moot.
    alive = 0
    for s in conns:
        s.setblocking(False)
        try:
            alive += s.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in conns:
        s.close()
    opened = len(conns)
    print(json.dumps({
        "label": a.label,
        "deflate_offered": a.deflate,
        "message_bytes": a.message,
        "conns": a.conns,
        "opened": opened,
        "failed": failed,
        "first_error": first_error,
        "alive_after": alive,
        "rss_before_kib": rss_before,
        "rss_open_kib": rss_open,
        "rss_per_conn_kib": round((rss_open - rss_before) / max(opened, 1), 3),
        "idle_secs": round(t1 - t0, 2),
        "idle_cpu_pct": round((cpu1 - cpu0) / (t1 - t0) * 100, 3),
    }))
    return 0 if failed == 0 and alive == opened else 1


if __name__ == "__main__":
    sys.exit(main())
