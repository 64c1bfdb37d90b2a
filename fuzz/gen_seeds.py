#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/seeds/<target>/ (small files, checked in).

Every seed starts with the chunking prefix the targets read (fuzz_targets/chunking.rs):
'@' = the stream in one piece; 'A' + one byte b = pieces of b+1 bytes; 'C' + three
bytes = three sizes used in turn. For the reader target, bit 3 of the first byte ('H' =
0x48) selects the tiny limits (125-byte frames, 256-byte messages); for the inflate
target it selects a 256-byte message limit, and bit 4 ('P' = 0x50, 'X' = 0x58) a
per-connection inflater.

Run from anywhere: python3 fuzz/gen_seeds.py
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

WHOLE = b"@"
BYTE_BY_BYTE = b"A\x00"
SEVEN_BYTES = b"A\x06"
MIXED = b"C\x02\x10\x40"  # pieces of 3, 17, 65 bytes
TINY_LIMITS = b"H"

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3 sample


def request(method="GET", target="/chat", version="HTTP/1.1", headers=None):
    if headers is None:
        headers = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def base_headers(**extra):
    h = [
        ("Host", "server.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", "https://example.com"),
    ]
    names = {n for n, _ in h}
    h = [(n, extra.get(n, v)) for n, v in h]  # override in place: one header each
    h += [(n, v) for n, v in extra.items() if n not in names]
    return h


MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, rsv=0, mask=MASK):
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask is not None else 0
    n = len(payload)
    if n <= 125:
        head = bytes([first, m | n])
    elif n <= 0xFFFF:
        head = bytes([first, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, m | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def close(code=None, reason=b""):
    return frame(8, b"" if code is None else struct.pack(">H", code) + reason)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def handshake_seeds():
    minimal = request()
    full = request(target="/chat?room=1", headers=base_headers(**{
        "Sec-WebSocket-Protocol": "soap, chat",
        "Sec-WebSocket-Extensions": 'permessage-deflate; client_max_window_bits, x-foo; a="b\\c"',
        "User-Agent": "seed/1.0",
    }))
    write("handshake", "rfc_sample_whole", WHOLE + minimal)
    write("handshake", "rfc_sample_byte_by_byte", BYTE_BY_BYTE + minimal)
    write("handshake", "full_mixed_pieces", MIXED + full)
    write("handshake", "full_then_eager_frame", SEVEN_BYTES + full + frame(1, b"hi"))
    write("handshake", "version_8_gets_426", WHOLE + request(headers=[
        ("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "8")]))
    write("handshake", "post_gets_405", WHOLE + request(method="POST"))
    write("handshake", "foreign_origin_gets_403", WHOLE + request(headers=base_headers(Origin="https://evil.example")))
    write("handshake", "plain_http_get", WHOLE + b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n")
    write("handshake", "short_key_gets_400", WHOLE + request(headers=[
        ("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Version", "13")]))
    write("handshake", "extensions_only", WHOLE + b'permessage-deflate; server_no_context_takeover; client_max_window_bits=10, x-webkit-deflate-frame')


def reader_seeds():
    hello = frame(1, b"Hello")
    fragmented = (frame(1, "héllo ".encode()[:2], fin=False)
                  + frame(9, b"ping!")
                  + frame(0, "héllo ".encode()[2:] + "wörld €".encode()[:9], fin=False)
                  + frame(0, "wörld €".encode()[9:]))
    mixed = (hello + frame(2, bytes(range(32))) + frame(9, b"") + frame(10, b"pong")
             + frame(2, bytes(300)) + close(1000, b"bye"))
    write("reader", "text_hello", WHOLE + hello)
    write("reader", "mixed_stream_byte_by_byte", BYTE_BY_BYTE + mixed)
    write("reader", "mixed_stream_pieces", MIXED + mixed)
    write("reader", "fragmented_utf8_with_ping", SEVEN_BYTES + fragmented + close())
    write("reader", "sixteen_bit_length", WHOLE + frame(2, bytes(i & 0xFF for i in range(1000))))
    write("reader", "close_empty", WHOLE + close())
    write("reader", "close_3000_reason", WHOLE + close(3000, "ok ✓".encode()))
    write("reader", "too_big_for_tiny_limits", TINY_LIMITS + frame(2, bytes(200)))
    write("reader", "fragments_too_big_for_tiny_limits", TINY_LIMITS
          + frame(2, bytes(100), fin=False) + frame(0, bytes(100), fin=False) + frame(0, bytes(100)))
    write("reader", "invalid_utf8_text", WHOLE + frame(1, b"ok\xed\xa0\x80"))
    write("reader", "unmasked_frame", WHOLE + frame(1, b"hi", mask=None))
    write("reader", "rsv1_set", WHOLE + frame(1, b"hi", rsv=4))
    write("reader", "close_code_1005", WHOLE + close(1005))


def utf8_seeds():
    mixed = ("ASCII text, then é, €, 𝄞 and 日本語. " * 4).encode()
    write("utf8", "mixed_whole", WHOLE + mixed)
    write("utf8", "mixed_byte_by_byte", BYTE_BY_BYTE + mixed)
    write("utf8", "mixed_pieces", MIXED + mixed)
    write("utf8", "ascii", WHOLE + b"The quick brown fox jumps over the lazy dog.")
    write("utf8", "surrogate", WHOLE + b"abc\xed\xa0\x80def")
    write("utf8", "overlong_slash", BYTE_BY_BYTE + b"a\xc0\xafb")
    write("utf8", "above_max_code_point", BYTE_BY_BYTE + b"\xf4\x90\x80\x80")
    write("utf8", "truncated_four_byte", WHOLE + "x𝄞".encode()[:-1])
    write("utf8", "lone_continuation", WHOLE + b"ab\x80")
    write("utf8", "four_byte_then_ascii", BYTE_BY_BYTE + b"\xf0\x90A")


def deflate(data, wbits=15, level=6):
    """A permessage-deflate payload (RFC 7692 §7.2.1): sync flush, tail removed."""
    z = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate_seeds():
    json = b'{"id":42,"user":"ada","text":"hello","ok":true},' * 40
    # RFC 7692 §7.2.3.1 / §7.2.3.2 / §7.2.3.4 examples: "Hello" compressed, stored,
    # and in a BFINAL block.
    write("inflate", "rfc_hello", WHOLE + bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]))
    write("inflate", "rfc_stored_hello", BYTE_BY_BYTE + bytes([0x00, 0x05, 0x00, 0xFA, 0xFF]) + b"Hello" + b"\x00")
    write("inflate", "rfc_bfinal_hello", WHOLE + bytes([0xF3, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x00]))
    write("inflate", "json_pieces", MIXED + deflate(json))
    write("inflate", "json_window_9_dedicated", b"P" + deflate(json, wbits=9))
    write("inflate", "json_over_tiny_limit", TINY_LIMITS + deflate(json))
    write("inflate", "zeros_bomb_tiny_limit", b"X" + deflate(bytes(200_000), level=9))
    write("inflate", "reserved_block_type", WHOLE + b"\xff\xff\xff")
    write("inflate", "truncated", SEVEN_BYTES + deflate(json)[:-9])


if __name__ == "__main__":
    handshake_seeds()
    reader_seeds()
    utf8_seeds()
    inflate_seeds()
