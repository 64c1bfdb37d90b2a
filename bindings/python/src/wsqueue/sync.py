"""Threaded front end, shaped like ``websockets.sync.server``.

::

    def echo(connection):
        for message in connection:
            connection.send(message)

    with wsqueue.sync.serve(echo, "127.0.0.1", 9002) as server:
        server.serve_forever()      # Ctrl-C: KeyboardInterrupt, then a clean shutdown

One dispatcher thread blocks in ``wsq_poll`` (without the GIL) and hands the events
to the connections; each connection runs in a worker thread of its own, from its
upgrade request (``process_request`` and the subprotocol choice run there) to the
end of its handler.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from . import _common
from ._common import *  # noqa: F403 (the names both front ends re-export)
from ._common import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    DEFAULT_MAX_QUEUE,
    HANDSHAKE_FAILED,
    ConnectionBase,
    ServerBase,
    broadcast_to,
    build_config,
    logger,
    parse_address,
    request_of,
    response_of,
)
from ._config import Config
from ._errors import ConnectionClosed, ConnectionClosedOK, Error, QueueFull, connection_closed
from ._events import CloseEvent, DrainEvent, MessageEvent, OpenEvent, UpgradeRequestEvent
from ._server import DEFAULT_POLL_BATCH, Payload

__all__ = ["ServerConnection", "WebSocketServer", "broadcast", "serve"]
__all__ += _common.__all__

Handler = Callable[["ServerConnection"], None]
ProcessRequest = Callable[["ServerConnection", Request], Any]
SelectSubprotocol = Callable[["ServerConnection", Sequence[str]], "str | None"]


class ServerConnection(ConnectionBase):
    """One WebSocket connection, used from its handler's thread (``send`` and ``close``
    also from any other thread)."""

    # No __slots__ here: a thread per connection costs far more than a __dict__.

    def __init__(self, server: WebSocketServer, event: UpgradeRequestEvent) -> None:
        super().__init__(server._engine, event.conn, request_of(event))
        self._server = server
        #: The peer's ``(host, port)``, or ``None`` if unknown.
        self.remote_address = parse_address(event.remote_address)
        # Guards the fields below and _close_exc; the dispatcher notifies it on every
        # change, the handler's thread (or a sender's) waits on it.
        self._lock = threading.Condition()
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._opened = False
        self._over_soft_limit = False
        self._drains = 0  # drain events handled so far

    # -- receiving ----------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message (``str`` text, ``bytes`` binary). Raises ``TimeoutError``
        after ``timeout`` seconds, :class:`ConnectionClosed` once closed and read out."""
        with self._lock:
            if not self._lock.wait_for(
                lambda: self._messages or self._close_exc is not None, timeout
            ):
                raise TimeoutError("no message within the timeout")
            if self._messages:
                message = self._messages.popleft()
                self._lock.notify_all()  # a dispatcher waiting for room
                return message
            assert self._close_exc is not None
            raise self._close_exc

    def __iter__(self) -> Iterator[str | bytes]:
        """Messages until a normal close (an abnormal one raises)."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # -- sending -----------------------------------------------------------------------

    def send(self, message: Payload) -> None:
        """Sends a message (``str`` text, bytes-like binary); blocks while the
        connection is over its soft send limit, until it drained to low water."""
        while True:
            with self._lock:
                self._lock.wait_for(lambda: not self._over_soft_limit or self._close_exc is not None)
                if self._close_exc is not None:
                    raise self._close_exc
                # The dispatcher may handle this send's drain before we take the lock
                # again below: only a count read now tells that it already happened.
                drains_before = self._drains
            try:
                over = self._engine_send(message)
            except QueueFull:
                self._wait_for_drain_since(drains_before)
                continue
            if over:
                self._wait_for_drain_since(drains_before)
            return

    def _wait_for_drain_since(self, drains_before: int) -> None:
        with self._lock:
            if self._drains == drains_before:
                self._over_soft_limit = True
            self._lock.wait_for(lambda: not self._over_soft_limit or self._close_exc is not None)

    def ping(self, data: bytes = b"") -> None:
        """Sends a ping (at most 125 bytes)."""
        self._engine_ping(data)

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int = CLOSE_NORMAL, reason: str = "", timeout: float | None = None) -> None:
        """Starts the closing handshake and waits (up to ``timeout`` s) until closed."""
        self._start_close(code, reason)
        self.wait_closed(timeout)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Waits until the connection is closed; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._close_exc is not None, timeout)

    # -- from the dispatcher ---------------------------------------------------------

    def _deliver(self, message: str | bytes, max_queue: int, stopping: threading.Event) -> None:
        with self._lock:
            while len(self._messages) >= max_queue and self._close_exc is None and not stopping.is_set():
                self._lock.wait(0.1)
            self._messages.append(message)
            self._lock.notify_all()

    def _on_open(self, subprotocol: str | None) -> None:
        with self._lock:
            self.subprotocol = subprotocol
            self._opened = True
            self._lock.notify_all()

    def _on_drain(self) -> None:
        with self._lock:
            self._drains += 1
            self._over_soft_limit = False
            self._lock.notify_all()

    def _on_close(self, code: int, reason: str, clean: bool) -> None:
        with self._lock:
            if self._close_exc is None:
                self._close_exc = connection_closed(code, reason, clean)
            self._lock.notify_all()

    def __repr__(self) -> str:
        return f"<wsqueue.sync.ServerConnection id={self.id} path={self.request.path!r}>"


class WebSocketServer(ServerBase[ServerConnection]):
    """A running server; created by :func:`serve`. Its dispatcher thread runs from
    creation until :meth:`shutdown`."""

    def __init__(
        self,
        handler: Handler,
        config: Config,
        *,
        process_request: ProcessRequest | None,
        select_subprotocol: SelectSubprotocol | None,
        max_queue: int,
        poll_batch: int,
    ) -> None:
        super().__init__(
            config,
            process_request=process_request,
            select_subprotocol=select_subprotocol,
            max_queue=max_queue,
            poll_batch=poll_batch,
        )
        self._handler = handler
        self._workers: dict[int, threading.Thread] = {}
        self._workers_lock = threading.Lock()
        # Workers whose handler ended; joined by the dispatcher (so none outlives
        # shutdown, not even for the instant between leaving _workers and exiting).
        self._finished: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._shutdown_lock = threading.Lock()
        self._shutdown_started = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="wsqueue-dispatch", daemon=True)
        self._dispatcher.start()

    # port, local_address, engine: ServerBase.

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections."""
        # A copy first: the dispatcher thread adds and removes connections meanwhile.
        # Opened only: a connection's worker exists from its upgrade request on.
        return {c for c in list(self._conns.values()) if c._opened and not c.closed}

    def serve_forever(self) -> None:
        """Blocks until :meth:`shutdown` (Ctrl-C raises KeyboardInterrupt here; leaving
        the ``with`` block then shuts down cleanly)."""
        self._done.wait()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stops accepting, closes every connection with 1001 after its queued messages
        (waiting up to ``timeout`` s), waits for the handler threads, frees the
        engine. Idempotent; from a handler thread it starts the shutdown and returns."""
        with self._shutdown_lock:
            first = not self._shutdown_started
            self._shutdown_started = True
        if first:
            self._stopping.set()
            try:
                self._engine.stop(timeout)
            except Error:
                pass  # already freed
        current = threading.current_thread()
        if current is self._dispatcher or current in self._workers.values():
            return
        self._done.wait()
        self._dispatcher.join()

    def __enter__(self) -> WebSocketServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- dispatcher thread --------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            while True:
                events = self._engine.poll(None, self._poll_batch)
                if not events:
                    # poll(forever) returns nothing only once stopped and drained.
                    break
                self._handle(events)
        except Exception:
            logger.exception("wsqueue: dispatcher failed")
        finally:
            for conn in list(self._conns.values()):
                conn._on_close(1006, "", False)
            self._conns.clear()
            while True:
                with self._workers_lock:
                    workers = list(self._workers.values()) + self._finished
                    self._finished = []
                if not workers:
                    break
                for worker in workers:
                    worker.join()
            self._engine.free()
            self._done.set()

    def _handle(self, events: list[Any]) -> None:
        with self._workers_lock:
            finished, self._finished = self._finished, []
        for worker in finished:
            worker.join()
        # The same switch over event types as asyncio's _on_readable (see there why
        # it is not shared); here a full connection blocks this thread in _deliver.
        conns = self._conns
        for event in events:
            if type(event) is MessageEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn._deliver(event.data, self._max_queue, self._stopping)
            elif type(event) is DrainEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn._on_drain()
            elif type(event) is CloseEvent:
                conn = conns.pop(event.conn, None)
                if conn is not None:
                    conn._on_close(event.code, event.reason, event.clean)
            elif type(event) is UpgradeRequestEvent:
                conn = ServerConnection(self, event)
                conns[event.conn] = conn
                worker = threading.Thread(
                    target=self._run_connection, args=(conn,), name=f"wsqueue-conn-{event.conn}", daemon=True
                )
                with self._workers_lock:
                    self._workers[event.conn] = worker
                try:
                    worker.start()
                except RuntimeError:
                    # Out of threads (a thread per connection has its price): refuse
                    # this upgrade with 503 and keep serving the others.
                    with self._workers_lock:
                        self._workers.pop(event.conn, None)
                    logger.error("wsqueue: no thread for a new connection; refused with 503")
                    try:
                        self._engine.reject(event.conn, 503, b"")
                    except Error:
                        pass
            elif type(event) is OpenEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn._on_open(event.subprotocol)

    # -- worker threads ---------------------------------------------------------------

    def _run_connection(self, conn: ServerConnection) -> None:
        try:
            if self._decide(conn):
                with conn._lock:
                    conn._lock.wait_for(lambda: conn._opened or conn._close_exc is not None)
                if conn._opened:
                    self._run_handler(conn)
        finally:
            with self._workers_lock:
                worker = self._workers.pop(conn.id, None)
                if worker is not None:
                    self._finished.append(worker)

    def _decide(self, conn: ServerConnection) -> bool:
        # As asyncio's _decide, except that process_request is a plain call here (this
        # worker thread may block in it).
        response: Response | None = None
        subprotocol: str | None = None
        try:
            if self._process_request is not None:
                response = response_of(self._process_request(conn, conn.request))
            if response is None and self._select_subprotocol is not None:
                subprotocol = self._chosen_subprotocol(conn)
        except Exception:
            logger.exception("wsqueue: opening handshake failed")
            response = HANDSHAKE_FAILED
        return self._answer_or_refuse(conn, response, subprotocol)

    def _run_handler(self, conn: ServerConnection) -> None:
        code = CLOSE_NORMAL
        try:
            self._handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("wsqueue: connection handler failed")
            code = CLOSE_INTERNAL_ERROR
        try:
            conn.close(code)
        except Error:
            pass


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    process_request: ProcessRequest | None = None,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: SelectSubprotocol | None = None,
    max_size: int | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    poll_batch: int = DEFAULT_POLL_BATCH,
    config: Config | None = None,
    **settings: Any,
) -> WebSocketServer:
    """Starts a server calling ``handler(connection)`` in a thread per connection.

    Parameters as :func:`wsqueue.asyncio.serve` (``process_request`` and
    ``select_subprotocol`` are plain functions here). Use as a context manager,
    which shuts the server down on exit.
    """
    # The parameters are spelled out here and in wsqueue.asyncio.serve alike, not
    # passed through as **kwargs: they are the public signature help() and type
    # checkers show, and the handler types differ.
    cfg = build_config(host, port, config, subprotocols, max_size, settings)
    return WebSocketServer(
        handler,
        cfg,
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        max_queue=max_queue,
        poll_batch=poll_batch,
    )


def broadcast(connections: Iterable[ServerConnection], message: Payload) -> None:
    """Sends ``message`` to every open connection in ``connections`` without waiting
    (``wsq_broadcast``; closed ones and those at their hard limit are skipped)."""
    broadcast_to(connections, message)
