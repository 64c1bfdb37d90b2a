"""asyncio front end, shaped like ``websockets.asyncio.server``.

::

    async def echo(connection):
        async for message in connection:
            await connection.send(message)

    async with wsqueue.asyncio.serve(echo, "127.0.0.1", 9002) as server:
        await server.serve_forever()

How it runs: the engine's event descriptor is registered with ``loop.add_reader``;
when it is readable, one ``wsq_poll`` fetches a batch of events (no wait), which are
copied, released, and handed to the connections. No thread polls and no thread runs
per connection. The replies handlers send in the next loop iteration are corked
(``wsq_cork``) and written with one system call per connection when the iteration's
callbacks have run.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
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

Handler = Callable[["ServerConnection"], Awaitable[None]]
ProcessRequest = Callable[["ServerConnection", Request], Any]
SelectSubprotocol = Callable[["ServerConnection", Sequence[str]], "str | None"]


class ServerConnection(ConnectionBase):
    """One WebSocket connection, handed to the handler once the handshake completed."""

    # Slots and lazily made futures and queues: an idle connection costs only this
    # object, its handler's task and the engine's own state. (The id, request,
    # subprotocol and close state are ConnectionBase's slots.)
    __slots__ = (
        "_server",
        "_remote",
        "_loop",
        "_messages",
        "_recv_waiter",
        "_drain_waiter",
        "_over_soft_limit",
        "_congested",
        "_closed",
    )

    def __init__(self, server: WebSocketServer, conn_id: int, request: Request, remote: str) -> None:
        super().__init__(server._engine, conn_id, request)
        self._server = server
        self._remote = remote  # parsed when asked for: most handlers never ask
        self._loop = server._loop
        self._messages: collections.deque[str | bytes] | None = None
        self._recv_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._over_soft_limit = False
        self._congested = False
        self._closed: asyncio.Future[None] | None = None

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's ``(host, port)``, or ``None`` if unknown."""
        return parse_address(self._remote)

    # -- state (closed, close_code, close_reason: ConnectionBase) -------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` and not yet written to the socket."""
        try:
            return self._engine.buffered_amount(self.id)
        except Error:
            return 0

    # -- receiving -------------------------------------------------------------------

    async def recv(self) -> str | bytes:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`ConnectionClosedOK` or :class:`ConnectionClosedError` once the
        connection is closed and every message that arrived before was read.
        """
        while not self._messages:
            if self._close_exc is not None:
                raise self._close_exc
            if self._recv_waiter is not None:
                raise RuntimeError("recv() is already running on this connection")
            waiter = self._loop.create_future()
            self._recv_waiter = waiter
            try:
                await waiter
            finally:
                self._recv_waiter = None
        message = self._messages.popleft()
        if self._congested:
            self._server._maybe_uncongest(self)
        return message

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Messages until a normal close (an abnormal one raises)."""
        return self

    async def __anext__(self) -> str | bytes:
        # A method, not an async generator: no extra frame kept per idle connection.
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    def _deliver(self, message: str | bytes) -> None:
        messages = self._messages
        if messages is None:
            messages = self._messages = collections.deque()
        messages.append(message)
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- sending ---------------------------------------------------------------------

    async def send(self, message: Payload) -> None:
        """Sends a message: ``str`` as text, bytes-like as binary.

        Returns once the engine took it. While the connection's buffered amount is
        over its soft limit (``send_queue_soft_limit``), waits until it drained to the
        low-water mark, so a client that stops reading makes its sender wait instead
        of growing the queue. Raises :class:`ConnectionClosed` once it is closed.
        """
        while True:
            if self._close_exc is not None:
                raise self._close_exc
            if self._over_soft_limit:
                await self._wait_drained()
                continue
            try:
                over = self._engine_send(message)
            except QueueFull:
                # Over the hard limit even though we wait at the soft one: a single
                # message larger than the room left. Wait for the drain and retry.
                self._over_soft_limit = True
                continue
            if over:
                self._over_soft_limit = True
                await self._wait_drained()
            return

    async def _wait_drained(self) -> None:
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = self._loop.create_future()
        await asyncio.shield(self._drain_waiter)
        if self._close_exc is not None and self._over_soft_limit:
            raise self._close_exc

    def _on_drain(self) -> None:
        self._over_soft_limit = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def ping(self, data: bytes = b"") -> None:
        """Sends a ping (at most 125 bytes); the engine answers the peer's pings itself."""
        self._engine_ping(data)

    # -- closing -----------------------------------------------------------------------

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Starts the closing handshake with ``code`` and ``reason`` and waits until the
        connection is closed (the peer answered, or the close timeout passed).
        Messages sent before go out first. Harmless on a closed connection."""
        self._start_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Waits until the connection is closed."""
        if self._close_exc is not None:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    def _on_close(self, event: CloseEvent) -> None:
        self._close_exc = connection_closed(event.code, event.reason, event.clean)
        for waiter in (self._recv_waiter, self._drain_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def __repr__(self) -> str:
        return f"<wsqueue.asyncio.ServerConnection id={self.id} path={self.request.path!r}>"


class WebSocketServer(ServerBase[ServerConnection]):
    """A running server; created by :func:`serve`.

    Unread messages are kept per connection. When one connection holds ``max_queue``
    of them, the server stops polling the engine until that connection's handler
    reads some (the C API has no per-connection read pause): memory stays bounded,
    and the engine's event queue, once full, stops reading sockets.
    """

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
        # The running loop first: without one, no engine is started.
        self._loop = asyncio.get_running_loop()
        super().__init__(
            config,
            process_request=process_request,
            select_subprotocol=select_subprotocol,
            max_queue=max_queue,
            poll_batch=poll_batch,
        )
        self._handler = handler
        self._config = config
        self._fd = self._engine.fileno()
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._congested = 0
        self._reading = False
        self._uncork_pending = False
        self._closing: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._start_reading()

    # -- public (port, local_address, engine: ServerBase) ------------------------------

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections."""
        return {c for c in self._conns.values() if not c.closed}

    def close(self, timeout: float = 5.0) -> None:
        """Starts the shutdown: stop accepting, close every connection with 1001 after
        its queued messages (``wsq_server_stop``, which waits up to ``timeout`` seconds
        for the clients to answer), wait for the handlers, free the engine.
        ``await wait_closed()`` for the end. Idempotent."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._shutdown(timeout))

    async def wait_closed(self) -> None:
        """Waits until :meth:`close` finished."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Runs until the server is closed (cancel it, or call :meth:`close`, to stop)."""
        try:
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await asyncio.shield(self.wait_closed())
            raise

    async def __aenter__(self) -> WebSocketServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    # -- event loop plumbing --------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._engine.freed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            events = self._engine.poll(0, self._poll_batch)
        except Error:
            logger.exception("wsqueue: poll failed")
            self._stop_reading()
            return
        # The same switch over event types as sync's _handle, written out in each on
        # purpose: this is the per-message hot path, and the branches differ (here the
        # max_queue pause and the cork; there a blocking delivery and worker threads).
        conns = self._conns
        delivered = False
        for event in events:
            if type(event) is MessageEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn._deliver(event.data)
                    delivered = True
                    if len(conn._messages or ()) >= self._max_queue and not conn._congested:
                        conn._congested = True
                        self._congested += 1
                        self._stop_reading()
            elif type(event) is DrainEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn._on_drain()
            elif type(event) is CloseEvent:
                conn = conns.pop(event.conn, None)
                if conn is not None:
                    conn._on_close(event)
            elif type(event) is UpgradeRequestEvent:
                self._on_upgrade(event)
            elif type(event) is OpenEvent:
                conn = conns.get(event.conn)
                if conn is not None:
                    conn.subprotocol = event.subprotocol
                    task = self._loop.create_task(self._run_handler(conn))
                    self._handlers.add(task)
                    task.add_done_callback(self._handlers.discard)
                    delivered = True
        if delivered and not self._uncork_pending and not self._engine.freed:
            # The handlers woken above run in the next iteration; cork their sends
            # and write them all once those callbacks ran (scheduled after them).
            self._engine.cork()
            self._uncork_pending = True
            self._loop.call_soon(self._uncork)

    def _uncork(self) -> None:
        self._uncork_pending = False
        if not self._engine.freed:
            self._engine.uncork()

    def _maybe_uncongest(self, conn: ServerConnection) -> None:
        if len(conn._messages or ()) <= self._max_queue // 2 or conn.closed:
            conn._congested = False
            self._congested -= 1
            if self._congested == 0 and self._closing is None:
                self._start_reading()

    # -- handshake and handlers ------------------------------------------------------

    def _on_upgrade(self, event: UpgradeRequestEvent) -> None:
        conn = ServerConnection(self, event.conn, request_of(event), event.remote_address)
        self._conns[event.conn] = conn
        if self._process_request is None and self._select_subprotocol is None:
            self._answer_or_refuse(conn, None, None)
            return
        task = self._loop.create_task(self._decide(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, conn: ServerConnection) -> None:
        # As sync's _decide, except that process_request may be a coroutine here.
        response: Response | None = None
        subprotocol: str | None = None
        try:
            if self._process_request is not None:
                value = self._process_request(conn, conn.request)
                if inspect.isawaitable(value):
                    value = await value
                response = response_of(value)
            if response is None and self._select_subprotocol is not None:
                subprotocol = self._chosen_subprotocol(conn)
        except Exception:
            logger.exception("wsqueue: opening handshake failed")
            response = HANDSHAKE_FAILED
        self._answer_or_refuse(conn, response, subprotocol)

    async def _run_handler(self, conn: ServerConnection) -> None:
        try:
            await self._handler(conn)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("wsqueue: connection handler failed")
            await self._close_quietly(conn, CLOSE_INTERNAL_ERROR, "")
            return
        await self._close_quietly(conn, CLOSE_NORMAL, "")

    async def _close_quietly(self, conn: ServerConnection, code: int, reason: str) -> None:
        try:
            await conn.close(code, reason)
        except Error:
            pass

    # -- shutdown ----------------------------------------------------------------------

    async def _shutdown(self, timeout: float) -> None:
        try:
            # wsq_server_stop blocks until the connections closed (or the timeout):
            # run it on a thread of its own (which ends with it) while this loop keeps
            # handling the close events it produces.
            done: asyncio.Future[None] = self._loop.create_future()

            def stop() -> None:
                try:
                    self._engine.stop(timeout)
                finally:
                    self._loop.call_soon_threadsafe(_set_done, done)

            thread = threading.Thread(target=stop, name="wsqueue-stop", daemon=True)
            self._start_reading()
            thread.start()
            await done
            thread.join()
            # Events still queued (the last closes) are delivered before freeing.
            while True:
                before = len(self._conns)
                self._on_readable()
                if self._engine.stats().event_queue_depth == 0 and len(self._conns) == before:
                    break
            for conn in list(self._conns.values()):
                conn._on_close(CloseEvent(conn.id, 0, 1006, "", False, 0))
            self._conns.clear()
            for task in list(self._tasks):
                task.cancel()
            if self._handlers:
                await asyncio.gather(*self._handlers, return_exceptions=True)
        finally:
            self._stop_reading()
            self._engine.free()
            if not self._closed.done():
                self._closed.set_result(None)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class serve:
    """Starts a WebSocket server calling ``handler(connection)`` for each connection.

    Use as ``async with serve(...) as server`` (closed on exit) or
    ``server = await serve(...)``. Parameters as in ``websockets``:

    - ``host``, ``port``: where to listen (``None``: every IPv4 address / a free port);
    - ``process_request(connection, request)``: may return ``None`` to go on, or a
      :class:`Response` (or ``(status, body)``) to refuse the upgrade; sync or async;
    - ``subprotocols``: supported subprotocols in order of preference (the engine
      picks the first the client offers), or ``select_subprotocol(connection,
      offered)`` to choose one in Python;
    - ``max_size``: the largest message (``max_message_size`` and ``max_frame_size``);
    - ``max_queue``: unread messages per connection before polling pauses;
    - ``config``: a :class:`wsqueue.Config` to start from; any other keyword sets
      the ``Config`` field of that name.
    """

    def __init__(
        self,
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
    ) -> None:
        self._handler = handler
        self._config = build_config(host, port, config, subprotocols, max_size, settings)
        self._process_request = process_request
        self._select_subprotocol = select_subprotocol
        self._max_queue = max_queue
        self._poll_batch = poll_batch
        self._server: WebSocketServer | None = None

    async def _start(self) -> WebSocketServer:
        self._server = WebSocketServer(
            self._handler,
            self._config,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            max_queue=self._max_queue,
            poll_batch=self._poll_batch,
        )
        return self._server

    def __await__(self) -> Any:
        return self._start().__await__()

    async def __aenter__(self) -> WebSocketServer:
        return await self._start()

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def broadcast(connections: Iterable[ServerConnection], message: Payload) -> None:
    """Sends ``message`` to every open connection in ``connections``, encoding the frame
    once per server (``wsq_broadcast``). Does not wait for backpressure: a
    connection over its soft limit still takes it, one at its hard limit or closed is
    skipped (as ``websockets.broadcast`` skips connections that are not open)."""
    broadcast_to(connections, message)
