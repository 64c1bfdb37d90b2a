"""The echo example's options (examples/README.md): ECHO_MAX_CONNECTIONS,
ECHO_PING_INTERVAL_MS, ECHO_REACTOR_THREADS and ECHO_POLL from the environment, each
seen to take effect (on the wire, or in the process's threads), and
bad values refused with exit status 2 before anything starts.

Each test starts its own build/echo_server (path in WSQ_ECHO_SERVER; run.sh sets it)
on a free port and stops it at the end. Timeouts exist only as hang guards.
"""

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_interop import _raw_handshake, _read_frame  # noqa: E402

HANG_GUARD_S = 60


@pytest.fixture(scope="module")
def binary():
    value = os.environ.get("WSQ_ECHO_SERVER")
    if not value:
        pytest.fail("WSQ_ECHO_SERVER is not set (run tests/interop/run.sh)")
    return value


def start(binary, **env):
    proc = subprocess.Popen(
        [binary, "0"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr.read())
    return proc, "ws://" + line.removeprefix("listening on ") + "/"


def stop(proc):
    proc.terminate()
    assert proc.wait(timeout=HANG_GUARD_S) == 0


def key():
    return base64.b64encode(os.urandom(16)).decode()


@pytest.mark.parametrize(
    "name,value",
    [
        ("ECHO_MAX_CONNECTIONS", "0"),
        ("ECHO_MAX_CONNECTIONS", "ten"),
        ("ECHO_MAX_CONNECTIONS", "-5"),
        ("ECHO_MAX_CONNECTIONS", "4294967296"),
        ("ECHO_MAX_CONNECTIONS", ""),
        ("ECHO_PING_INTERVAL_MS", "1.5"),
        ("ECHO_PING_INTERVAL_MS", "99999999999999999999999"),
        ("ECHO_REACTOR_THREADS", "two"),
        ("ECHO_REACTOR_THREADS", "-1"),
        ("ECHO_POLL", "2"),
        ("ECHO_POLL", "yes"),
    ],
)
def test_bad_option_value_is_refused_with_exit_2(binary, name, value):
    done = subprocess.run(
        [binary, "0"], env={**os.environ, name: value}, capture_output=True, text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert name in done.stderr
    assert "listening" not in done.stdout


def refused_upgrade_status(url):
    """The status line of an upgrade the server answers with an HTTP error (which,
    unlike a 101, may carry a body: the shared raw handshake helper refuses that)."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=HANG_GUARD_S) as sock:
        sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed before a status line, got {head!r}"
            head += chunk
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def test_connection_cap_answers_503_past_it(binary):
    proc, url = start(binary, ECHO_MAX_CONNECTIONS="2")
    socks = []
    try:
        for _ in range(2):
            sock, status, _ = _raw_handshake(url, key())
            socks.append(sock)
            assert status.startswith("HTTP/1.1 101"), status
        status = refused_upgrade_status(url)
        assert status.startswith("HTTP/1.1 503"), status
    finally:
        for s in socks:
            s.close()
        stop(proc)


def test_ping_interval_pings_a_silent_client(binary):
    proc, url = start(binary, ECHO_PING_INTERVAL_MS="200")
    try:
        sock, status, _ = _raw_handshake(url, key())
        try:
            assert status.startswith("HTTP/1.1 101"), status
            # Silent from here on: the first frame the server sends must be its ping
            # (RFC 6455 §5.5.2), well before the hang guard.
            sock.settimeout(HANG_GUARD_S)
            fin, opcode, _ = _read_frame(sock)
            assert (fin, opcode) == (True, 0x9)
        finally:
            sock.close()
    finally:
        stop(proc)


def test_without_the_option_a_silent_client_is_not_pinged(binary):
    proc, url = start(binary)
    try:
        sock, status, _ = _raw_handshake(url, key())
        try:
            assert status.startswith("HTTP/1.1 101"), status
            sock.settimeout(1.0)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        finally:
            sock.close()
    finally:
        stop(proc)


def reactor_threads(pid):
    names = [open(f"/proc/{pid}/task/{t}/comm").read().strip() for t in os.listdir(f"/proc/{pid}/task")]
    return sum(name.startswith("wsq-reactor") for name in names)


@pytest.mark.parametrize("count", [1, 3])
def test_reactor_threads_option_sets_the_io_threads(binary, count):
    proc, _ = start(binary, ECHO_REACTOR_THREADS=str(count))
    try:
        # A thread names itself once it runs: look again for a while before failing.
        for _ in range(100):
            if reactor_threads(proc.pid) == count:
                break
            time.sleep(0.05)
        assert reactor_threads(proc.pid) == count
    finally:
        stop(proc)


@pytest.mark.parametrize("poll", ["0", "1"])
def test_handler_and_poll_delivery_both_echo_in_order(binary, poll):
    # ECHO_POLL=0 (the default): events handled on the library's I/O threads
    # (on_event); 1: polled on the main thread. Either way every echo comes back, in
    # order, text as text and binary as binary.
    from websockets.sync.client import connect

    proc, url = start(binary, ECHO_POLL=poll)
    try:
        with connect(url, open_timeout=HANG_GUARD_S) as ws:
            for i in range(50):
                ws.send(f"message {i}")
            ws.send(bytes(range(256)))
            for i in range(50):
                assert ws.recv(timeout=HANG_GUARD_S) == f"message {i}"
            assert ws.recv(timeout=HANG_GUARD_S) == bytes(range(256))
    finally:
        stop(proc)
