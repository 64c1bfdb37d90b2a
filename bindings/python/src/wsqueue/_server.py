"""``Server``: the low-level API, one method per C function of ``include/wsqueue.h``.

Nothing here hides the engine: events come from :meth:`Server.poll` in batches,
sends say whether the connection is over its soft limit, and failures raise the
:class:`wsqueue.Error` subclass of their result code. The asyncio and sync front
ends are built on this class alone.
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from ctypes import byref, c_char_p, c_int, c_size_t, c_uint16, c_uint64, c_void_p

from . import _ffi
from ._config import Config
from ._errors import BadHandle, InvalidArgument, error_for
from ._events import (
    CloseEvent,
    DrainEvent,
    Event,
    Headers,
    MessageEvent,
    OpenEvent,
    PingEvent,
    PongEvent,
    UpgradeRequestEvent,
)

_lib = _ffi.lib
_string_at = ctypes.string_at
_EVENT_SIZE = _ffi.EVENT_STRUCT.size
_iter_unpack = _ffi.EVENT_STRUCT.iter_unpack
_U64 = 1 << 64

#: Events fetched per wsq_poll call unless told otherwise: large, so that one
#: boundary crossing carries many messages under load.
DEFAULT_POLL_BATCH = 1024

Payload = str | bytes | bytearray | memoryview


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of the server's counters (``wsq_stats_t``; see the header for each)."""

    connections: int
    tcp_accepted: int
    handshakes: int
    messages_in: int
    bytes_in: int
    messages_out: int
    bytes_out: int
    send_queue_bytes: int
    event_queue_depth: int
    rejected_bad_handshake: int
    rejected_over_capacity: int
    rejected_by_app: int
    handshake_timeouts: int
    http_requests: int
    protocol_errors: int
    too_big: int
    queue_full: int
    slow_consumer_closes: int
    idle_timeouts: int
    ping_timeouts: int
    unsent_messages: int
    read_pauses: int
    accept_errors: int
    backpressure_reports: int
    budget_refusals: int
    pongs_coalesced: int
    tls_errors: int


def encode_payload(data: Payload) -> tuple[int, bytes]:
    """``(kind, bytes)`` for a message: ``str`` is text (UTF-8), anything else binary."""
    if isinstance(data, str):
        return _ffi.MESSAGE_TEXT, data.encode()
    if isinstance(data, bytes):
        return _ffi.MESSAGE_BINARY, data
    if isinstance(data, (bytearray, memoryview)):
        return _ffi.MESSAGE_BINARY, bytes(data)
    raise TypeError(f"a message is str or bytes-like, not {type(data).__name__}")


def _check_conn(conn: int) -> None:
    if isinstance(conn, bool) or not isinstance(conn, int) or not 0 <= conn < _U64:
        raise InvalidArgument(f"connection id must be an int in 0..2**64-1, not {conn!r}")


def _cstr(ptr: int | None) -> str:
    return _string_at(ptr).decode(errors="replace") if ptr else ""


def _headers(ptr: int | None, count: int) -> Headers:
    if not ptr or not count:
        return Headers([])
    array = ctypes.cast(ptr, ctypes.POINTER(_ffi.wsq_header_t))
    parts = []
    for i in range(count):
        h = array[i]
        parts.append(h.name or b"")
        parts.append(h.value or b"")
    return Headers.packed(b"\0".join(parts).decode(errors="replace"))


class Server:
    """A running wsqueue server (``wsq_server_start``); free it with :meth:`free`.

    Thread-safe like the C API: any thread may send, and several may poll. Use it as
    a context manager to stop and free it on exit.
    """

    def __init__(self, config: Config | None = None) -> None:
        cfg = (config or Config()).to_c()
        handle = c_void_p()
        result = _lib.wsq_server_start(byref(cfg), byref(handle))
        if result != _ffi.OK:
            raise error_for(result)
        self._handle: int | None = handle.value
        self._lock = threading.Lock()
        self._buffers = threading.local()

    # -- lifetime --------------------------------------------------------------

    def _h(self) -> int:
        handle = self._handle
        if handle is None:
            raise BadHandle("the server was freed", _ffi.ERR_BAD_HANDLE)
        return handle

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful shutdown (``wsq_server_stop``): close 1001 to everyone after their
        queued messages, wait up to ``timeout`` seconds, drop the rest. Blocks (without
        the GIL). Idempotent; remaining events can still be polled."""
        result = _lib.wsq_server_stop(self._h(), _millis(timeout))
        if result != _ffi.OK:
            raise error_for(result)

    def free(self) -> None:
        """Stop at once if running and release the server (``wsq_server_free``).

        Afterwards every method raises :class:`wsqueue.BadHandle`. Idempotent.
        """
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            _lib.wsq_server_free(handle)

    @property
    def freed(self) -> bool:
        """True once :meth:`free` ran."""
        return self._handle is None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    def __del__(self) -> None:
        # A forgotten server must not keep its threads and sockets alive.
        if getattr(self, "_handle", None) is not None:
            self.free()

    # -- addresses, fd, stats --------------------------------------------------

    @property
    def port(self) -> int:
        """The port of the first listen address (``wsq_server_port``)."""
        port = c_uint16()
        result = _lib.wsq_server_port(self._h(), byref(port))
        if result != _ffi.OK:
            raise error_for(result)
        return port.value

    def local_address(self, index: int = 0) -> str:
        """Listen address number ``index`` as ``"ip:port"`` (``wsq_server_local_addr``)."""
        if index < 0:
            raise InvalidArgument("index must not be negative")
        buf = ctypes.create_string_buffer(64)
        result = _lib.wsq_server_local_addr(self._h(), index, buf, len(buf))
        if result != _ffi.OK:
            raise error_for(result)
        return buf.value.decode()

    def fileno(self) -> int:
        """The event descriptor: readable exactly while events wait to be polled.

        Owned by the server (do not close or read it); for select, poll or
        ``loop.add_reader``."""
        fd = c_int()
        result = _lib.wsq_server_event_fd(self._h(), byref(fd))
        if result != _ffi.OK:
            raise error_for(result)
        return fd.value

    event_fd = fileno

    def stats(self) -> Stats:
        """A snapshot of the counters (``wsq_stats``)."""
        out = _ffi.wsq_stats_t()
        result = _lib.wsq_stats(self._h(), byref(out))
        if result != _ffi.OK:
            raise error_for(result)
        return Stats(*(getattr(out, name) for name in _ffi.STATS_FIELDS))

    # -- events ----------------------------------------------------------------

    def poll(self, timeout: float | None = 0.0, max_events: int = DEFAULT_POLL_BATCH) -> list[Event]:
        """Waits up to ``timeout`` seconds (``None``: forever; 0: not at all) and returns
        up to ``max_events`` events, copied into Python objects.

        The library's memory for the batch is released before this returns (so the
        calling thread's corked sends are written at once, see ``wsq_poll``). Returns
        ``[]`` on timeout, or at once once the server is stopped and drained.
        """
        if max_events < 1:
            raise InvalidArgument("max_events must be at least 1")
        array = self._array(max_events)
        count = c_size_t()
        result = _lib.wsq_poll(self._h(), array, max_events, _millis(timeout), byref(count))
        if result != _ffi.OK:
            raise error_for(result)
        n = count.value
        if n == 0:
            return []
        try:
            return self._copy_events(array, n)
        finally:
            _lib.wsq_events_release(array, n)

    def _array(self, capacity: int) -> ctypes.Array[_ffi.wsq_event_t]:
        # One array per thread (threads may poll at once), grown on demand.
        array: ctypes.Array[_ffi.wsq_event_t] | None = getattr(self._buffers, "array", None)
        if array is None or len(array) < capacity:
            array = (_ffi.wsq_event_t * capacity)()
            self._buffers.array = array
        return array

    @staticmethod
    def _copy_events(array: ctypes.Array[_ffi.wsq_event_t], n: int) -> list[Event]:
        raw = _string_at(ctypes.addressof(array), n * _EVENT_SIZE)
        events: list[Event] = []
        append = events.append
        for (
            etype,
            kind,
            conn,
            tag,
            data,
            length,
            close_code,
            clean,
            reason,
            reason_len,
            unsent,
            path,
            remote,
            subprotocol,
            headers,
            header_count,
            _internal,
        ) in _iter_unpack(raw):
            if etype == _ffi.EVENT_MESSAGE:
                payload = _string_at(data, length) if length else b""
                append(
                    MessageEvent(
                        conn, tag, payload.decode() if kind == _ffi.MESSAGE_TEXT else payload
                    )
                )
            elif etype == _ffi.EVENT_CLOSE:
                text = _string_at(reason, reason_len).decode(errors="replace") if reason_len else ""
                append(CloseEvent(conn, tag, close_code, text, bool(clean), unsent))
            elif etype == _ffi.EVENT_DRAIN:
                append(DrainEvent(conn, tag))
            elif etype in (_ffi.EVENT_OPEN, _ffi.EVENT_UPGRADE_REQUEST):
                cls = OpenEvent if etype == _ffi.EVENT_OPEN else UpgradeRequestEvent
                append(
                    cls(
                        conn,
                        tag,
                        _cstr(path),
                        _cstr(remote),
                        _cstr(subprotocol) if subprotocol else None,
                        _headers(headers, header_count),
                    )
                )
            elif etype == _ffi.EVENT_PING:
                append(PingEvent(conn, tag, _string_at(data, length) if length else b""))
            elif etype == _ffi.EVENT_PONG:
                append(PongEvent(conn, tag, _string_at(data, length) if length else b""))
        return events

    # -- sending ---------------------------------------------------------------

    def send(self, conn: int, data: Payload) -> bool:
        """Sends one message: ``str`` as text, bytes-like as binary (``wsq_send``).

        Returns ``True`` when the message was accepted but the connection is now over
        its soft limit (``WSQ_BACKPRESSURE``: send no more until its
        :class:`DrainEvent`), ``False`` when simply accepted. Raises on refusal.
        """
        _check_conn(conn)
        kind, payload = encode_payload(data)
        result = _lib.wsq_send(self._h(), conn, kind, payload, len(payload))
        if result == _ffi.OK:
            return False
        if result == _ffi.BACKPRESSURE:
            return True
        raise error_for(result)

    def send_batch(self, messages: Sequence[tuple[int, Payload]]) -> list[int]:
        """Sends many ``(conn, message)`` pairs in one call (``wsq_send_batch``).

        Returns each message's result code, in order: ``0`` (accepted),
        ``100`` (accepted, over the soft limit) or a ``WSQ_ERR_*`` number (refused;
        :func:`wsqueue.error_for_code` turns one into its exception).
        """
        count = len(messages)
        if count == 0:
            return []
        items = (_ffi.wsq_send_item_t * count)()
        keep: list[bytes] = []
        for i, (conn, data) in enumerate(messages):
            _check_conn(conn)
            kind, payload = encode_payload(data)
            keep.append(payload)
            item = items[i]
            item.conn = conn
            item.kind = kind
            item.data = ctypes.cast(c_char_p(payload), c_void_p).value
            item.len = len(payload)
        result = _lib.wsq_send_batch(self._h(), items, count)
        if result != _ffi.OK:
            raise error_for(result)
        return [item.result for item in items]

    def broadcast(self, data: Payload, conns: Iterable[int] | None = None) -> int:
        """Sends one message to every open connection, or to ``conns`` (``wsq_broadcast``).

        The frame is encoded once. Connections closing, gone or at their hard limit are
        skipped. Returns how many took it.
        """
        kind, payload = encode_payload(data)
        delivered = c_size_t()
        if conns is None:
            ids = None
            n = 0
        else:
            ids_list = list(conns)
            for conn in ids_list:
                _check_conn(conn)
            n = len(ids_list)
            ids = (c_uint64 * max(n, 1))(*ids_list)
        result = _lib.wsq_broadcast(self._h(), kind, payload, len(payload), ids, n, byref(delivered))
        if result != _ffi.OK:
            raise error_for(result)
        return delivered.value

    def cork(self) -> None:
        """Corks this thread's sends until :meth:`uncork` (``wsq_cork``)."""
        result = _lib.wsq_cork(self._h())
        if result != _ffi.OK:
            raise error_for(result)

    def uncork(self) -> None:
        """Writes what this thread's sends corked (``wsq_uncork``)."""
        result = _lib.wsq_uncork(self._h())
        if result != _ffi.OK:
            raise error_for(result)

    def buffered_amount(self, conn: int) -> int:
        """Bytes accepted for ``conn`` and not yet written (``wsq_buffered_amount``)."""
        _check_conn(conn)
        out = c_uint64()
        result = _lib.wsq_buffered_amount(self._h(), conn, byref(out))
        if result != _ffi.OK:
            raise error_for(result)
        return out.value

    def ping(self, conn: int, data: bytes = b"") -> None:
        """Sends a ping with at most 125 bytes of payload (``wsq_ping``)."""
        _check_conn(conn)
        payload = bytes(data)
        result = _lib.wsq_ping(self._h(), conn, payload, len(payload))
        if result != _ffi.OK:
            raise error_for(result)

    def close(self, conn: int, code: int = 1000, reason: str = "") -> None:
        """Starts the closing handshake (``wsq_close``); a :class:`CloseEvent` follows.

        ``code``: 1000-1003, 1007-1014 or 3000-4999; ``reason``: at most 123 UTF-8 bytes.
        """
        _check_conn(conn)
        if not 0 <= code <= 0xFFFF:
            raise InvalidArgument(f"close code {code} is not a valid close code")
        raw = reason.encode()
        result = _lib.wsq_close(self._h(), conn, code, raw, len(raw))
        if result != _ffi.OK:
            raise error_for(result)

    # -- tags and manual accept -------------------------------------------------

    def set_tag(self, conn: int, tag: int) -> None:
        """Sets the connection's user tag, reported by later events (``wsq_set_tag``)."""
        _check_conn(conn)
        _check_conn(tag)
        result = _lib.wsq_set_tag(self._h(), conn, tag)
        if result != _ffi.OK:
            raise error_for(result)

    def get_tag(self, conn: int) -> int:
        """The connection's user tag (``wsq_get_tag``)."""
        _check_conn(conn)
        out = c_uint64()
        result = _lib.wsq_get_tag(self._h(), conn, byref(out))
        if result != _ffi.OK:
            raise error_for(result)
        return out.value

    def accept(
        self,
        conn: int,
        subprotocol: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Completes a manual-accept handshake (``wsq_accept``); an :class:`OpenEvent` follows.

        ``subprotocol`` must be one the client offered (``None``: the server's choice);
        ``headers`` are added to the 101 response.
        """
        _check_conn(conn)
        pairs = [_ffi.wsq_header_t(name.encode(), value.encode()) for name, value in headers]
        array = (_ffi.wsq_header_t * max(len(pairs), 1))(*pairs)
        proto = subprotocol.encode() if subprotocol is not None else None
        result = _lib.wsq_accept(self._h(), conn, proto, array, len(pairs))
        if result != _ffi.OK:
            raise error_for(result)

    def reject(self, conn: int, status: int = 403, body: str | bytes = b"") -> None:
        """Refuses a manual-accept upgrade with HTTP ``status`` (400-599) and ``body``."""
        _check_conn(conn)
        if not 0 <= status <= 0xFFFF:
            raise InvalidArgument(f"HTTP status {status} is out of range")
        raw = body.encode() if isinstance(body, str) else bytes(body)
        result = _lib.wsq_reject(self._h(), conn, status, raw, len(raw))
        if result != _ffi.OK:
            raise error_for(result)


def _millis(timeout: float | None) -> int:
    """Seconds (``None`` or negative: forever) as the C API's int milliseconds."""
    if timeout is None or timeout < 0:
        return -1
    return min(int(timeout * 1000), 0x7FFFFFFF)
