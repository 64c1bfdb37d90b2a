"""What the asyncio and sync front ends share: the request, addresses, handshake
decisions (process_request, subprotocols) and the server config they start with."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ._config import Config
from ._errors import InvalidArgument
from ._events import Headers, OpenEvent, UpgradeRequestEvent

#: Close code for a handler that raised (RFC 6455 §7.4.1: internal error).
CLOSE_INTERNAL_ERROR = 1011
#: A handler that returns closes its connection with this code (normal closure).
CLOSE_NORMAL = 1000


@dataclasses.dataclass(frozen=True)
class Request:
    """The upgrade request: ``path`` (target with query) and ``headers``."""

    path: str
    headers: Headers


@dataclasses.dataclass(frozen=True)
class Response:
    """What ``process_request`` returns to refuse an upgrade: HTTP ``status`` and ``body``."""

    status: int
    body: str | bytes = b""


def parse_address(text: str) -> tuple[str, int] | None:
    """``"ip:port"`` or ``"[ip6]:port"`` as ``(host, port)``; ``None`` if unknown."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def listen_address(host: str | None, port: int | None) -> str:
    """The engine's ``listen`` string for ``host`` and ``port`` (``None``: any / a free one)."""
    p = 0 if port is None else port
    if host is None:
        return f"0.0.0.0:{p}"
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{p}"
    return f"{host}:{p}"


def offered_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols the client offered, in its order of preference."""
    return [
        item.strip()
        for value in headers.get_all("Sec-WebSocket-Protocol")
        for item in value.split(",")
        if item.strip()
    ]


def build_config(
    host: str | None,
    port: int | None,
    config: Config | None,
    subprotocols: Sequence[str] | None,
    max_size: int | None,
    overrides: dict[str, Any],
) -> Config:
    """The engine config for a front end: manual accept always on (the handshake is
    decided in Python: process_request, subprotocol choice)."""
    cfg = dataclasses.replace(config) if config is not None else Config()
    cfg.listen = listen_address(host, port)
    cfg.manual_accept = True
    if subprotocols is not None:
        for proto in subprotocols:
            if not proto or "," in proto:
                raise InvalidArgument(f"bad subprotocol name {proto!r}")
        cfg.subprotocols = ",".join(subprotocols) if subprotocols else None
    if max_size is not None:
        cfg.max_message_size = max_size
        cfg.max_frame_size = max_size
    for name, value in overrides.items():
        if not hasattr(cfg, name):
            raise TypeError(f"unknown setting {name!r} (see wsqueue.Config)")
        setattr(cfg, name, value)
    return cfg


def request_of(event: UpgradeRequestEvent | OpenEvent) -> Request:
    """The :class:`Request` an upgrade or open event describes."""
    return Request(event.path, event.headers)


def response_of(value: object) -> Response | None:
    """Normalizes what ``process_request`` returned: ``None`` (accept), a
    :class:`Response`, or a ``(status, body)`` tuple."""
    if value is None or isinstance(value, Response):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        return Response(value[0], value[1])
    raise TypeError(f"process_request must return None, a Response or (status, body), not {value!r}")
