"""``Config``: the Python mirror of ``wsq_config_t``, defaults read from the library."""

from __future__ import annotations

import ctypes
import dataclasses
from typing import Any

from . import _ffi

_DEFAULTS = _ffi.default_config()
_C_TYPES: dict[str, Any] = {entry[0]: entry[1] for entry in _ffi.wsq_config_t._fields_}
# PEM bytes: one ``bytes`` field here, a pointer and a ``_len`` in C.
_BYTES_FIELDS = ("tls_cert_chain_pem", "tls_private_key_pem")


def _default(name: str) -> Any:
    value = getattr(_DEFAULTS, name)
    return value.decode() if isinstance(value, bytes) else value


@dataclasses.dataclass
class Config:
    """Server settings, field for field ``wsq_config_t`` (see ``docs/CONFIG.md``).

    Every default is the one ``wsq_config_init`` writes, read from the loaded
    library, so the two cannot drift apart. Comma-separated lists stay strings, as
    in C; ``None`` means "none".
    """

    listen: str = _default("listen")
    reactor_threads: int = _default("reactor_threads")
    max_connections: int = _default("max_connections")
    max_head_bytes: int = _default("max_head_bytes")
    max_headers: int = _default("max_headers")
    max_frame_size: int = _default("max_frame_size")
    max_message_size: int = _default("max_message_size")
    send_queue_soft_limit: int = _default("send_queue_soft_limit")
    send_queue_hard_limit: int = _default("send_queue_hard_limit")
    send_queue_low_water: int = _default("send_queue_low_water")
    slow_consumer: int = _default("slow_consumer")
    max_buffered_bytes: int = _default("max_buffered_bytes")
    event_queue_capacity: int = _default("event_queue_capacity")
    handshake_timeout_ms: int = _default("handshake_timeout_ms")
    idle_timeout_ms: int = _default("idle_timeout_ms")
    ping_interval_ms: int = _default("ping_interval_ms")
    pong_timeout_ms: int = _default("pong_timeout_ms")
    close_timeout_ms: int = _default("close_timeout_ms")
    failure_grace_ms: int = _default("failure_grace_ms")
    manual_accept: bool = _default("manual_accept")
    deliver_ping_pong: bool = _default("deliver_ping_pong")
    subprotocols: str | None = _default("subprotocols")
    allowed_origins: str | None = _default("allowed_origins")
    static_dir: str | None = _default("static_dir")
    deflate: int = _default("deflate")
    deflate_window_bits: int = _default("deflate_window_bits")
    deflate_min_size: int = _default("deflate_min_size")
    deflate_level: int = _default("deflate_level")
    #: Comma-separated ``wss://`` addresses, bound after ``listen``; every one presents
    #: the certificate chain and key below (``listen=""`` serves ``wss://`` only).
    tls_listen: str | None = None
    tls_cert_chain_file: str | None = None
    tls_private_key_file: str | None = None
    #: PEM bytes in memory, used instead of the files when set.
    tls_cert_chain_pem: bytes | None = None
    tls_private_key_pem: bytes | None = None

    def to_c(self) -> _ffi.wsq_config_t:
        """The ``wsq_config_t`` for these settings (strings encoded as UTF-8).

        Raises :class:`wsqueue.InvalidArgument` for a value that does not fit its C
        type (negative, too large, or a string holding a NUL byte).
        """
        from ._errors import InvalidArgument

        cfg = _ffi.default_config()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            ctype = _C_TYPES[field.name]
            if field.name in _BYTES_FIELDS:
                if value is not None and not isinstance(value, bytes):
                    raise InvalidArgument(f"Config.{field.name} must be bytes or None")
                setattr(cfg, field.name, value)
                setattr(cfg, field.name + "_len", 0 if value is None else len(value))
            elif ctype is ctypes.c_char_p:
                if value is not None and not isinstance(value, str):
                    raise InvalidArgument(f"Config.{field.name} must be a str or None")
                if value is not None and "\0" in value:
                    raise InvalidArgument(f"Config.{field.name} contains a NUL byte")
                setattr(cfg, field.name, None if value is None else value.encode())
            elif ctype is ctypes.c_bool:
                setattr(cfg, field.name, bool(value))
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise InvalidArgument(f"Config.{field.name} must be an int")
                bits = ctypes_bits(ctype)
                if not 0 <= value < (1 << bits):
                    raise InvalidArgument(
                        f"Config.{field.name} = {value} is outside 0..2**{bits}-1"
                    )
                setattr(cfg, field.name, value)
        return cfg


def ctypes_bits(ctype: Any) -> int:
    """Width in bits of an unsigned ctypes integer type."""
    return ctypes.sizeof(ctype) * 8
