"""ctypes declarations of the C ABI in ``include/wsqueue.h`` and the library loader.

This module is the only place that knows the C types; everything else in the
package goes through the functions declared here. The struct layouts mirror the
header field for field (the header is generated from the Rust code, so a change
there must show up here): tests/test_abi.py compiles a C program against the header
and compares every field's offset and size, and the constants, with these.
"""

from __future__ import annotations

import ctypes
import os
import struct
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_size_t,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

#: Environment variable naming a ``libwsqueue.so`` to load instead of the bundled one.
LIBRARY_ENV = "WSQUEUE_LIBRARY"

# Result codes (wsq_result_t): stable numbers, see the header.
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_NOT_FOUND = 2
ERR_CLOSED = 3
ERR_QUEUE_FULL = 4
ERR_STOPPED = 5
ERR_INVALID_STATE = 6
ERR_IO = 7
ERR_BAD_HANDLE = 8
ERR_PANIC = 9
ERR_TLS = 10
BACKPRESSURE = 100

MESSAGE_TEXT = 1
MESSAGE_BINARY = 2

EVENT_OPEN = 1
EVENT_MESSAGE = 2
EVENT_CLOSE = 3
EVENT_DRAIN = 4
EVENT_UPGRADE_REQUEST = 5
EVENT_PING = 6
EVENT_PONG = 7

SLOW_CONSUMER_REJECT = 0
SLOW_CONSUMER_CLOSE = 1

DEFLATE_OFF = 0
DEFLATE_SHARED = 1
DEFLATE_DEDICATED = 2


class wsq_config_t(Structure):
    _fields_ = [
        ("listen", c_char_p),
        ("reactor_threads", c_uint32),
        ("max_connections", c_uint32),
        ("max_head_bytes", c_uint32),
        ("max_headers", c_uint32),
        ("max_frame_size", c_uint64),
        ("max_message_size", c_uint64),
        ("send_queue_soft_limit", c_uint64),
        ("send_queue_hard_limit", c_uint64),
        ("send_queue_low_water", c_uint64),
        ("slow_consumer", c_uint32),
        ("max_buffered_bytes", c_uint64),
        ("event_queue_capacity", c_uint32),
        ("handshake_timeout_ms", c_uint32),
        ("idle_timeout_ms", c_uint32),
        ("ping_interval_ms", c_uint32),
        ("pong_timeout_ms", c_uint32),
        ("close_timeout_ms", c_uint32),
        ("failure_grace_ms", c_uint32),
        ("manual_accept", c_bool),
        ("deliver_ping_pong", c_bool),
        ("subprotocols", c_char_p),
        ("allowed_origins", c_char_p),
        ("static_dir", c_char_p),
        ("deflate", c_uint32),
        ("deflate_window_bits", c_uint32),
        ("deflate_min_size", c_uint64),
        ("deflate_level", c_uint32),
        ("tls_listen", c_char_p),
        ("tls_cert_chain_file", c_char_p),
        ("tls_private_key_file", c_char_p),
        # PEM bytes: pointer and length (c_char_p keeps the bytes object alive; the
        # length, not a NUL, ends it).
        ("tls_cert_chain_pem", c_char_p),
        ("tls_cert_chain_pem_len", c_size_t),
        ("tls_private_key_pem", c_char_p),
        ("tls_private_key_pem_len", c_size_t),
        # Handler mode (events on the library's threads) is for C: ctypes would take
        # the GIL for every event. Left NULL, so events are polled.
        ("on_event", c_void_p),
        ("on_event_user", c_void_p),
    ]


STATS_FIELDS = (
    "connections",
    "tcp_accepted",
    "handshakes",
    "messages_in",
    "bytes_in",
    "messages_out",
    "bytes_out",
    "send_queue_bytes",
    "event_queue_depth",
    "rejected_bad_handshake",
    "rejected_over_capacity",
    "rejected_by_app",
    "handshake_timeouts",
    "http_requests",
    "protocol_errors",
    "too_big",
    "queue_full",
    "slow_consumer_closes",
    "idle_timeouts",
    "ping_timeouts",
    "unsent_messages",
    "read_pauses",
    "accept_errors",
    "backpressure_reports",
    "budget_refusals",
    "pongs_coalesced",
    "tls_errors",
)


class wsq_stats_t(Structure):
    _fields_ = [(name, c_uint64) for name in STATS_FIELDS]


class wsq_header_t(Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class wsq_event_t(Structure):
    _fields_ = [
        ("event_type", c_uint32),
        ("message_kind", c_uint32),
        ("conn", c_uint64),
        ("tag", c_uint64),
        ("data", c_void_p),
        ("len", c_size_t),
        ("close_code", c_uint16),
        ("clean", c_bool),
        ("reason", c_void_p),
        ("reason_len", c_size_t),
        ("unsent_messages", c_uint64),
        ("path", c_void_p),
        ("remote_addr", c_void_p),
        ("subprotocol", c_void_p),
        ("headers", c_void_p),
        ("header_count", c_size_t),
        ("internal", c_void_p),
    ]


# The poll loop reads a whole batch of events with one struct.iter_unpack over the
# array's memory instead of one ctypes attribute lookup per field (several times
# cheaper per event). '@' is native size and alignment, the same rules as C's; the
# assertion below catches any drift from the ctypes layout.
EVENT_STRUCT = struct.Struct("@IIQQPNH?PNQPPPPNP")
assert EVENT_STRUCT.size == ctypes.sizeof(wsq_event_t), "wsq_event_t layout mismatch"


class wsq_send_item_t(Structure):
    _fields_ = [
        ("conn", c_uint64),
        ("kind", c_uint32),
        ("result", c_uint32),
        ("data", c_void_p),
        ("len", c_size_t),
    ]


def _library_path() -> str:
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return override
    bundled = Path(__file__).with_name("libwsqueue.so")
    if bundled.exists():
        return str(bundled)
    raise ImportError(
        f"wsqueue: no bundled libwsqueue.so next to {__file__}; reinstall the package "
        f"(pip install builds it with cargo) or set {LIBRARY_ENV} to a built library"
    )


def _load() -> ctypes.CDLL:
    # CDLL (not PyDLL): every call releases the GIL, so a blocking wsq_poll or
    # wsq_server_stop lets other Python threads run.
    lib = ctypes.CDLL(_library_path())
    server = c_void_p
    res = c_uint32

    def decl(name: str, restype: object, *argtypes: object) -> None:
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = list(argtypes)

    decl("wsq_version", c_char_p)
    decl("wsq_config_init", res, POINTER(wsq_config_t))
    decl("wsq_server_start", res, POINTER(wsq_config_t), POINTER(c_void_p))
    decl("wsq_server_stop", res, server, c_uint32)
    decl("wsq_server_free", None, server)
    decl("wsq_server_port", res, server, POINTER(c_uint16))
    decl("wsq_server_local_addr", res, server, c_size_t, c_char_p, c_size_t)
    decl("wsq_server_event_fd", res, server, POINTER(c_int))
    decl("wsq_stats", res, server, POINTER(wsq_stats_t))
    decl("wsq_poll", res, server, c_void_p, c_size_t, c_int, POINTER(c_size_t))
    decl("wsq_events_release", None, c_void_p, c_size_t)
    decl("wsq_send", res, server, c_uint64, c_uint32, c_char_p, c_size_t)
    decl("wsq_send_batch", res, server, c_void_p, c_size_t)
    decl("wsq_cork", res, server)
    decl("wsq_uncork", res, server)
    decl("wsq_buffered_amount", res, server, c_uint64, POINTER(c_uint64))
    decl("wsq_ping", res, server, c_uint64, c_char_p, c_size_t)
    decl("wsq_close", res, server, c_uint64, c_uint16, c_char_p, c_size_t)
    decl(
        "wsq_broadcast",
        res,
        server,
        c_uint32,
        c_char_p,
        c_size_t,
        POINTER(c_uint64),
        c_size_t,
        POINTER(c_size_t),
    )
    decl("wsq_set_tag", res, server, c_uint64, c_uint64)
    decl("wsq_get_tag", res, server, c_uint64, POINTER(c_uint64))
    decl("wsq_accept", res, server, c_uint64, c_char_p, POINTER(wsq_header_t), c_size_t)
    decl("wsq_reject", res, server, c_uint64, c_uint16, c_char_p, c_size_t)
    decl("wsq_strerror", c_char_p, c_uint32)
    decl("wsq_last_error", c_char_p)
    return lib


lib = _load()


def library_version() -> str:
    """The loaded library's version (``wsq_version``)."""
    raw: bytes = lib.wsq_version()
    return raw.decode()


def default_config() -> wsq_config_t:
    """A ``wsq_config_t`` filled by ``wsq_config_init`` (the library's defaults)."""
    cfg = wsq_config_t()
    lib.wsq_config_init(ctypes.byref(cfg))
    return cfg
