"""wsqueue: a WebSocket (RFC 6455) server on the wsqueue Rust engine, through ctypes.

Three layers, each usable on its own:

- :class:`Server` and the event classes: the C API, one method per function.
- :mod:`wsqueue.asyncio`: ``serve(handler, host, port)`` like the ``websockets``
  package, on the running event loop.
- :mod:`wsqueue.sync`: the same with one thread per connection.
"""

from __future__ import annotations

from . import _ffi
from ._config import Config
from ._errors import (
    BadHandle,
    Closed,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    Error,
    InvalidArgument,
    InvalidState,
    IOFailure,
    NotFound,
    Panic,
    TLSError,
    QueueFull,
    Stopped,
    error_for,
)
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
from ._server import Server, Stats

#: The package's version: the Rust crate's (``Cargo.toml``), as the library reports it.
__version__: str = _ffi.library_version()

MESSAGE_TEXT = _ffi.MESSAGE_TEXT
MESSAGE_BINARY = _ffi.MESSAGE_BINARY
SLOW_CONSUMER_REJECT = _ffi.SLOW_CONSUMER_REJECT
SLOW_CONSUMER_CLOSE = _ffi.SLOW_CONSUMER_CLOSE
DEFLATE_OFF = _ffi.DEFLATE_OFF
DEFLATE_SHARED = _ffi.DEFLATE_SHARED
DEFLATE_DEDICATED = _ffi.DEFLATE_DEDICATED
OK = _ffi.OK
BACKPRESSURE = _ffi.BACKPRESSURE


def error_for_code(code: int) -> Error:
    """The exception a failed call with result ``code`` raises (e.g. from ``send_batch``)."""
    return error_for(code)


__all__ = [
    "BACKPRESSURE",
    "BadHandle",
    "DEFLATE_DEDICATED",
    "DEFLATE_OFF",
    "DEFLATE_SHARED",
    "CloseEvent",
    "Closed",
    "Config",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DrainEvent",
    "Error",
    "Event",
    "Headers",
    "IOFailure",
    "InvalidArgument",
    "InvalidState",
    "MESSAGE_BINARY",
    "MESSAGE_TEXT",
    "MessageEvent",
    "NotFound",
    "OK",
    "OpenEvent",
    "Panic",
    "TLSError",
    "PingEvent",
    "PongEvent",
    "QueueFull",
    "SLOW_CONSUMER_CLOSE",
    "SLOW_CONSUMER_REJECT",
    "Server",
    "Stats",
    "Stopped",
    "UpgradeRequestEvent",
    "__version__",
    "error_for_code",
]
