"""What the asyncio and sync front ends share: the request, addresses, handshake
decisions (process_request, subprotocols), the server config they start with, and
the bookkeeping of connections and servers that does not wait (:class:`ConnectionBase`,
:class:`ServerBase`).

What waits stays in each front end: asyncio waits on futures in the event loop,
sync on a condition variable in a thread, so ``recv``, ``send``'s backpressure wait,
``close``/``wait_closed``, event dispatch and shutdown are written twice on purpose.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from . import _ffi
from ._config import Config
from ._errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Error,
    InvalidArgument,
    connection_closed,
)
from ._events import Headers, OpenEvent, UpgradeRequestEvent
from ._server import Payload, Server

# The names both front ends (wsqueue.asyncio, wsqueue.sync) re-export, as websockets'
# server modules do: each does ``from ._common import *`` and adds this list to its
# own ``__all__``.
__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Request",
    "Response",
]

logger = logging.getLogger("wsqueue")

#: Unread messages per connection at which a front end stops polling the engine until
#: the handler reads (Python memory stays bounded; the engine's full event queue then
#: pushes back on the clients over TCP).
DEFAULT_MAX_QUEUE = 1024

#: Result codes that mean "this connection (or the server) is gone": the front ends
#: turn them into :class:`ConnectionClosed` or ignore them, never raise them as such.
CLOSED_ERRORS = (_ffi.ERR_NOT_FOUND, _ffi.ERR_CLOSED, _ffi.ERR_STOPPED, _ffi.ERR_BAD_HANDLE)

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


#: The refusal for an upgrade whose ``process_request`` or ``select_subprotocol`` raised.
HANDSHAKE_FAILED = Response(500, "Failed to open a WebSocket connection.\n")


class ConnectionBase:
    """The state both front ends' connections keep alike, and their engine calls that
    do not wait. A subclass adds how to wait for messages, drains and the close."""

    # Slots (here and in the asyncio subclass): an idle connection stays small.
    __slots__ = ("_engine", "id", "request", "subprotocol", "_close_exc", "_close_sent")

    def __init__(self, engine: Server, conn_id: int, request: Request) -> None:
        self._engine = engine
        #: The engine's connection id (never reused).
        self.id = conn_id
        #: The upgrade request (path and headers).
        self.request = request
        #: The negotiated subprotocol, or ``None``.
        self.subprotocol: str | None = None
        # Set once, when the close event arrives: what recv and send raise from then on.
        self._close_exc: ConnectionClosed | None = None
        # (code, reason) of a close this side started, for errors before the close event.
        self._close_sent: tuple[int, str] | None = None

    @property
    def closed(self) -> bool:
        """True once the connection is gone (its close event arrived)."""
        return self._close_exc is not None

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed, else ``None``."""
        return self._close_exc.code if self._close_exc else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed, else ``None``."""
        return self._close_exc.reason if self._close_exc else None

    def _closed_now(self) -> ConnectionClosed:
        """What to raise for a connection the engine says is gone."""
        if self._close_exc is not None:
            return self._close_exc
        if self._close_sent is not None:
            return connection_closed(*self._close_sent, True)
        return ConnectionClosedError(1006, "", False)

    def _engine_send(self, message: Payload) -> bool:
        """``wsq_send``: True if now over the soft limit. A connection that is gone
        raises :class:`ConnectionClosed`; :class:`wsqueue.QueueFull` passes through."""
        try:
            return self._engine.send(self.id, message)
        except Error as exc:
            if exc.code in CLOSED_ERRORS:
                raise self._closed_now() from None
            raise

    def _engine_ping(self, data: bytes) -> None:
        """``wsq_ping``; a connection that is gone raises :class:`ConnectionClosed`."""
        try:
            self._engine.ping(self.id, data)
        except Error as exc:
            if exc.code in CLOSED_ERRORS:
                raise self._closed_now() from None
            raise

    def _start_close(self, code: int, reason: str) -> None:
        """Starts the closing handshake once; harmless on a connection that is gone."""
        if self._close_exc is None and self._close_sent is None:
            try:
                self._engine.close(self.id, code, reason)
                self._close_sent = (code, reason)
            except Error as exc:
                if exc.code not in CLOSED_ERRORS:
                    raise


ConnT = TypeVar("ConnT", bound=ConnectionBase)


class ServerBase(Generic[ConnT]):
    """The state both front ends' servers keep alike: the engine, the open
    connections by id, the handshake hooks and the polling limits."""

    def __init__(
        self,
        config: Config,
        *,
        process_request: Callable[[ConnT, Request], Any] | None,
        select_subprotocol: Callable[[ConnT, Sequence[str]], str | None] | None,
        max_queue: int,
        poll_batch: int,
    ) -> None:
        self._process_request = process_request
        self._select_subprotocol = select_subprotocol
        self._max_queue = max(1, max_queue)
        self._poll_batch = poll_batch
        self._engine = Server(config)
        self._conns: dict[int, ConnT] = {}

    @property
    def port(self) -> int:
        """The port the server listens on (useful with port 0)."""
        return self._engine.port

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The first listen address as ``(host, port)``."""
        return parse_address(self._engine.local_address(0))

    @property
    def engine(self) -> Server:
        """The low-level :class:`wsqueue.Server` underneath (stats, tags, ...)."""
        return self._engine

    def _chosen_subprotocol(self, conn: ConnT) -> str | None:
        """``select_subprotocol``'s choice among those the client offered (call only
        when it is set); a choice that was not offered raises ``ValueError``."""
        assert self._select_subprotocol is not None
        offered = offered_subprotocols(conn.request.headers)
        subprotocol = self._select_subprotocol(conn, offered)
        if subprotocol is not None and subprotocol not in offered:
            raise ValueError(f"select_subprotocol chose {subprotocol!r}, not offered")
        return subprotocol

    def _answer(self, conn: ConnT, response: Response | None, subprotocol: str | None) -> bool:
        """Refuses the upgrade with ``response``, or accepts it with ``subprotocol``;
        True if accepted. A connection gone meanwhile is no error (False); any other
        failure is raised, for the front end to log."""
        try:
            if response is not None:
                self._engine.reject(conn.id, response.status, response.body)
                return False
            self._engine.accept(conn.id, subprotocol)
            return True
        except Error as exc:
            if exc.code in CLOSED_ERRORS:
                return False
            raise

    def _answer_or_refuse(self, conn: ConnT, response: Response | None, subprotocol: str | None) -> bool:
        """``_answer``, except that an answer the engine refuses (a status outside
        400-599, a subprotocol the client did not offer) is logged and the upgrade
        refused with 500, so that the client is answered rather than left to time out."""
        try:
            return self._answer(conn, response, subprotocol)
        except Error as exc:
            logger.error("wsqueue: answering the upgrade failed: %s", exc)
            try:
                self._engine.reject(conn.id, 500, b"")
            except Error:
                pass
            return False


def broadcast_to(connections: Iterable[ConnectionBase], message: Payload) -> None:
    """``broadcast`` of both front ends: one ``wsq_broadcast`` per server to the
    connections in ``connections`` that are open; closed ones and those at their
    hard limit are skipped."""
    by_server: dict[int, tuple[Server, list[int]]] = {}
    for conn in connections:
        if conn.closed or conn._engine.freed:
            continue
        entry = by_server.setdefault(id(conn._engine), (conn._engine, []))
        entry[1].append(conn.id)
    for engine, ids in by_server.values():
        try:
            engine.broadcast(message, ids)
        except Error as exc:
            if exc.code not in CLOSED_ERRORS:
                raise
