#!/usr/bin/env python3
"""Holds N idle WebSocket connections to a server and measures what they cost it.

    hold.py PORT SERVER_PID [--conns 10000] [--secs 30] [--settle 2] [--label NAME]

Opens the connections one by one (plain sockets, RFC 6455 handshake, every answer
checked for 101 and the right Sec-WebSocket-Accept), lets the server settle, then
samples the server's resident memory and CPU time from /proc over --secs seconds while
the connections stay silent. Prints one JSON line:

    rss_per_conn_kib   (RSS with the connections open - RSS before) / conns
    idle_cpu_pct       server CPU time over the idle period / its length, in % of a core
    opened, failed     handshakes that succeeded / failed

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
import time

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


def open_connection(port: int) -> socket.socket:
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
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
    return s


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("pid", type=int)
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--secs", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--label", default="")
    a = p.parse_args()

    rss_before = server_rss_kib(a.pid)
    conns, failed, first_error = [], 0, ""
    for _ in range(a.conns):
        try:
            conns.append(open_connection(a.port))
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
