"""Interop: the Python `websockets` client against build/echo_server.

The server's address comes from WSQ_ECHO_URL (tests/interop/run.sh starts a fresh
echo_server and sets it). Every test connects on its own, so one failure does not
cascade into the next. Timeouts exist only as hang guards.
"""

import asyncio
import base64
import hashlib
import os
import random
import socket
import ssl
import struct
import urllib.parse

import pytest
from websockets.asyncio.client import connect

MiB = 1024 * 1024
# Generous: a 16 MiB round trip on a busy 2-core machine is a few seconds at worst.
HANG_GUARD_S = 120
# RFC 6455 §1.3: the GUID appended to the key for Sec-WebSocket-Accept.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="session")
def url():
    value = os.environ.get("WSQ_ECHO_URL")
    if not value:
        pytest.fail("WSQ_ECHO_URL is not set (run tests/interop/run.sh)")
    return value


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD_S))


def client(url, **kwargs):
    # max_size=None: the library's own default (1 MiB) would refuse our 16 MiB echoes.
    # No keepalive pings: they would interleave with the frames a test checks.
    kwargs.setdefault("max_size", None)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", 30)
    kwargs.setdefault("close_timeout", 30)
    return connect(url, **kwargs)


def ascii_text(size, seed):
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    # Built from a short random block so 16 MiB strings cost little to make.
    block = "".join(rng.choice(alphabet) for _ in range(4096))
    return (block * (size // len(block) + 1))[:size]


def random_bytes(size, seed):
    return random.Random(seed).randbytes(size)


# Payload sizes around every frame-length encoding boundary (RFC 6455 §5.2: 7-bit up
# to 125, 16-bit up to 65535, 64-bit beyond), plus 1 MiB and the 16 MiB the echo
# server must accept.
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, MiB, 16 * MiB]


@pytest.mark.parametrize("size", SIZES)
def test_binary_message_echoes_byte_for_byte(url, size):
    async def body():
        payload = random_bytes(size, size)
        async with client(url) as ws:
            await ws.send(payload)
            echoed = await ws.recv()
        assert isinstance(echoed, bytes), "binary must come back as binary"
        assert len(echoed) == size
        assert echoed == payload

    run(body())


@pytest.mark.parametrize("size", SIZES)
def test_text_message_echoes_as_identical_text(url, size):
    async def body():
        payload = ascii_text(size, size)
        async with client(url) as ws:
            await ws.send(payload)
            echoed = await ws.recv()
        assert isinstance(echoed, str), "text must come back as text"
        assert len(echoed) == size
        assert echoed == payload

    run(body())


def test_hundred_pipelined_messages_come_back_in_order(url):
    async def body():
        # Mixed kinds and sizes, all sent before the first read.
        messages = []
        for i in range(100):
            if i % 2:
                messages.append(random_bytes(i * 97, i))
            else:
                messages.append(f"message {i} " + ascii_text(i * 131, i))
        async with client(url) as ws:
            for m in messages:
                await ws.send(m)
            echoed = [await ws.recv() for _ in messages]
        for i, (sent, got) in enumerate(zip(messages, echoed)):
            assert type(got) is type(sent), f"message {i} changed kind"
            assert got == sent, f"message {i} differs"

    run(body())


def test_echoes_all_arrive_in_order_when_client_reads_only_after_sending_160_mib(url):
    # The client sends 160 MiB before reading anything. Once TCP buffers and
    # websockets' own receive queue are full, echo_server's send queue for us fills
    # (128 MiB), its wsq_send answers "queue full", echoes go to its backlog and must
    # all be resent, in order, on the library's drain event as we start reading.
    async def body():
        block = random_bytes(MiB, 160)
        count = 160
        async with client(url, max_queue=4) as ws:
            for i in range(count):
                await ws.send(i.to_bytes(4, "big") + block)
            for i in range(count):
                got = await ws.recv()
                assert got[:4] == i.to_bytes(4, "big"), f"echo {i} out of order"
                assert got[4:] == block, f"echo {i} corrupted"

    run(body())


UNICODE_SAMPLES = [
    "héllo wörld",
    "Ελληνικά · русский · עברית · العربية",
    "中文字符 日本語のテキスト 한국어",
    "emoji 😀🎉👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "combining e\u0301 a\u0308 and zero width \u200b joiner \u200d",
    # Edges of the UTF-8 encoding lengths, and the largest code point.
    "\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    # NUL is valid text.
    "nul \x00 inside",
    # Long enough to need a 16-bit length and to split multibyte chars across reads.
    "€😀中" * 20000,
]


@pytest.mark.parametrize("text", UNICODE_SAMPLES, ids=range(len(UNICODE_SAMPLES)))
def test_unicode_text_round_trips_unchanged(url, text):
    async def body():
        async with client(url) as ws:
            await ws.send(text)
            echoed = await ws.recv()
        assert isinstance(echoed, str)
        assert echoed == text

    run(body())


def test_client_ping_is_answered_by_pong_with_same_payload(url):
    async def body():
        async with client(url) as ws:
            # websockets matches each pong to its ping by payload, so awaiting the
            # waiter proves a pong with exactly this payload arrived.
            for payload in [b"", b"ping-1", bytes(range(125))]:
                pong = await ws.ping(payload)
                await pong
            # A ping between data messages does not disturb them.
            await ws.send("before")
            pong = await ws.ping(b"middle")
            await ws.send(b"after")
            assert await ws.recv() == "before"
            await pong
            assert await ws.recv() == b"after"

    run(body())


def test_client_close_gets_code_1000_echoed(url):
    async def body():
        async with client(url) as ws:
            await ws.send("last words")
            assert await ws.recv() == "last words"
            await ws.close(code=1000, reason="done")
            rcvd = ws.protocol.close_rcvd
            assert rcvd is not None, "the server never answered the close frame"
            assert rcvd.code == 1000
            # The handshake completed as the RFC describes: we sent first, it answered.
            assert ws.protocol.close_rcvd_then_sent is False
            assert ws.close_code == 1000

    run(body())


# ---- raw sockets: what the client library hides ----------------------------------


def _raw_handshake(url, key):
    parsed = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    if parsed.scheme == "wss":
        # The default context: run.sh points SSL_CERT_FILE at the CA it made.
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parsed.hostname)
    request = (
        f"GET {parsed.path or '/'} HTTP/1.1\r\n"
        f"Host: {parsed.hostname}:{parsed.port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed during the handshake, got {head!r}"
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    assert rest == b"", "the server sent frames before the client spoke"
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return sock, lines[0], headers


def _masked_frame(opcode, payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return data


def _read_frame(sock):
    b0, b1 = _recv_exact(sock, 2)
    assert b1 & 0x80 == 0, "server frames must not be masked (RFC 6455 §5.1)"
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _recv_exact(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _recv_exact(sock, 8))
    return b0 & 0x80 != 0, b0 & 0x0F, _recv_exact(sock, length)


def test_handshake_accept_matches_rfc_example_key(url):
    # RFC 6455 §1.3's worked example: this key must give exactly this accept value.
    sock, status, headers = _raw_handshake(url, "dGhlIHNhbXBsZSBub25jZQ==")
    sock.close()
    assert status.startswith("HTTP/1.1 101"), status
    assert headers.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert headers.get("upgrade", "").lower() == "websocket"
    assert "upgrade" in headers.get("connection", "").lower()


def test_handshake_accept_is_checked_by_websockets(url):
    async def body():
        # websockets refuses to open if the accept value is wrong; check it here too,
        # so a lenient future client version cannot hide a bad one.
        async with client(url) as ws:
            key = ws.request.headers["Sec-WebSocket-Key"]
            expected = base64.b64encode(
                hashlib.sha1((key + WS_GUID).encode()).digest()
            ).decode()
            assert ws.response.status_code == 101
            assert ws.response.headers["Sec-WebSocket-Accept"] == expected
            await ws.send("ok")
            assert await ws.recv() == "ok"

    run(body())


def test_server_closes_tcp_after_client_initiated_close(url):
    # RFC 6455 §7.1.1: after the closing handshake the server closes TCP first. The
    # raw socket sees the close reply and then EOF; it never closes its own side.
    sock, status, _ = _raw_handshake(url, base64.b64encode(os.urandom(16)).decode())
    try:
        assert status.startswith("HTTP/1.1 101"), status
        sock.sendall(_masked_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        fin, opcode, payload = _read_frame(sock)
        assert (fin, opcode) == (True, 0x8), "expected a close frame"
        assert struct.unpack("!H", payload[:2])[0] == 1000
        sock.settimeout(30)
        assert sock.recv(1) == b"", "server sent data after its close frame"
    finally:
        sock.close()


def test_fifty_concurrent_clients_each_echo_a_hundred_messages(url):
    async def one_client(n):
        async with client(url) as ws:
            for i in range(100):
                # Alternating kinds, each message unique to its client and position,
                # so a cross-talk or reordering bug cannot go unnoticed.
                msg = f"client {n} message {i}" if i % 2 == 0 else f"{n}:{i}".encode() * (i + 1)
                await ws.send(msg)
                got = await ws.recv()
                assert got == msg, f"client {n} message {i}: got {got!r:.80}"
        return n

    async def body():
        done = await asyncio.gather(*(one_client(n) for n in range(50)))
        assert sorted(done) == list(range(50))

    run(body())


# ---- permessage-deflate (RFC 7692) ------------------------------------------------------
#
# `url` is an echo_server in its default mode (shared: no context takeover); the
# `dedicated_url` one runs with --deflate dedicated (context takeover where allowed).
# These are the behaviours of the Autobahn 12.x/13.x cases: many sizes, fragmented
# compressed messages, every parameter combination, context over many messages.

from websockets.extensions.permessage_deflate import (  # noqa: E402
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)


@pytest.fixture(scope="session")
def dedicated_url():
    value = os.environ.get("WSQ_ECHO_DEDICATED_URL")
    if not value:
        pytest.fail("WSQ_ECHO_DEDICATED_URL is not set (run tests/interop/run.sh)")
    return value


def json_text(size, seed):
    rng = random.Random(seed)
    parts, total = [], 0
    while total < size:
        n = rng.randrange(1000)
        parts.append(f'{{"id":{n},"user":"u{n % 17}","text":"message {n}","ok":true}},')
        total += len(parts[-1])
    return "".join(parts)[:size]


def deflate_of(ws):
    [ext] = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return ext


def count_compressed_frames(ext):
    """Wraps the extension's decoder to count the frames that arrive with RSV1."""
    seen = {"rsv1": 0}
    decode = ext.decode

    def counting(frame, **kwargs):
        if frame.rsv1:
            seen["rsv1"] += 1
        return decode(frame, **kwargs)

    ext.decode = counting
    return seen


def test_deflate_is_negotiated_in_shared_mode_and_used_both_ways(url):
    async def body():
        async with client(url) as ws:
            header = ws.response.headers["Sec-WebSocket-Extensions"]
            assert header == (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
            )
            ext = deflate_of(ws)
            assert ext.remote_no_context_takeover and ext.local_no_context_takeover
            seen = count_compressed_frames(ext)
            payload = json_text(64 * 1024, 1)
            await ws.send(payload)
            assert await ws.recv() == payload
            # Under the minimum size (64 bytes): sent plain.
            await ws.send("tiny")
            assert await ws.recv() == "tiny"
        assert seen["rsv1"] == 1, "the big echo compressed, the small one plain"

    run(body())


DEFLATE_SIZES = [0, 1, 63, 64, 125, 126, 65535, 65536, MiB, 16 * MiB]


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
@pytest.mark.parametrize("size", DEFLATE_SIZES)
def test_compressed_echo_of_every_size(url, dedicated_url, mode, size):
    target = url if mode == "shared" else dedicated_url

    async def body():
        async with client(target) as ws:
            text = json_text(size, size)
            data = random_bytes(size, size)
            await ws.send(text)
            assert await ws.recv() == text
            # Random bytes do not compress: the server may send them either way.
            await ws.send(data)
            assert await ws.recv() == data

    run(body())


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
def test_fragmented_compressed_messages_echo(url, dedicated_url, mode):
    # RFC 7692 §6.1: RSV1 on the first fragment only; websockets compresses the
    # fragments of one message as one stream.
    target = url if mode == "shared" else dedicated_url

    async def body():
        async with client(target) as ws:
            for n in (2, 3, 17):
                chunks = [json_text(1000 + 37 * i, i) for i in range(n)]
                await ws.send(chunks)
                assert await ws.recv() == "".join(chunks)
                blobs = [json_text(500, i).encode() for i in range(n)]
                await ws.send(blobs)
                assert await ws.recv() == b"".join(blobs)

    run(body())


def test_context_takeover_over_five_hundred_messages(dedicated_url):
    # RFC 7692 §7.1.1: both sides keep their window, so later messages refer back.
    async def body():
        async with client(dedicated_url) as ws:
            ext = deflate_of(ws)
            assert not ext.remote_no_context_takeover
            assert not ext.local_no_context_takeover
            seen = count_compressed_frames(ext)
            for i in range(500):
                msg = json_text(200 + (i * 53) % 3000, i % 7)
                await ws.send(msg)
                assert await ws.recv() == msg, f"message {i}"
        assert seen["rsv1"] == 500

    run(body())


# Every parameter combination a client can offer (RFC 7692 §7.1), as Autobahn 13.x
# does: each side's no-context-takeover, and window bits (client_max_window_bits=8 is
# not in the list: Python's zlib cannot compress with an 8-bit window).
COMBOS = [
    (snct, cnct, sbits, cbits)
    for snct in (False, True)
    for cnct in (False, True)
    for sbits in (None, 8, 9, 12, 15)
    for cbits in (None, True, 9, 15)
]


@pytest.mark.parametrize("mode", ["shared", "dedicated"])
@pytest.mark.parametrize("snct,cnct,sbits,cbits", COMBOS)
def test_every_offer_parameter_combination(url, dedicated_url, mode, snct, cnct, sbits, cbits):
    target = url if mode == "shared" else dedicated_url
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=snct,
        client_no_context_takeover=cnct,
        server_max_window_bits=sbits,
        client_max_window_bits=cbits,
    )

    async def body():
        async with client(target, compression=None, extensions=[factory]) as ws:
            ext = deflate_of(ws)
            # What was asked is granted (§7.1.1, §7.1.2).
            assert ext.remote_no_context_takeover or not snct
            assert ext.local_no_context_takeover or not cnct
            assert ext.remote_max_window_bits <= (sbits or 15)
            if isinstance(cbits, int) and cbits is not True:
                assert ext.local_max_window_bits <= cbits
            for i in range(12):
                msg = json_text(100 * 3**(i % 6), i)
                await ws.send(msg)
                assert await ws.recv() == msg, f"message {i}"

    run(body())
