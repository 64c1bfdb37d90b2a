"""Exceptions: one class per ``wsq_result_t`` failure, all under :class:`Error`."""

from __future__ import annotations

from . import _ffi


class Error(Exception):
    """A wsqueue call failed. ``code`` is the C result number (``WSQ_ERR_*``)."""

    code: int = -1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(Error, ValueError):
    """A bad argument or setting (``WSQ_ERR_INVALID_ARGUMENT``)."""


class NotFound(Error, LookupError):
    """No such connection: never existed or already gone (``WSQ_ERR_NOT_FOUND``)."""


class Closed(Error):
    """The connection is closing or closed (``WSQ_ERR_CLOSED``)."""


class QueueFull(Error):
    """Refused at the hard send limit or the server's budget (``WSQ_ERR_QUEUE_FULL``)."""


class Stopped(Error):
    """The server is stopping or stopped (``WSQ_ERR_STOPPED``)."""


class InvalidState(Error):
    """The call does not fit the connection's state (``WSQ_ERR_INVALID_STATE``)."""


class IOFailure(Error):
    """An operating-system error, e.g. address in use (``WSQ_ERR_IO``)."""


class BadHandle(Error):
    """The server was already freed (``WSQ_ERR_BAD_HANDLE``)."""


class Panic(Error):
    """An internal bug caught at the C boundary (``WSQ_ERR_PANIC``); please report it."""


class TLSError(Error):
    """A ``wss://`` certificate chain or key cannot be read or used (``WSQ_ERR_TLS``)."""


class ConnectionClosed(Error):
    """The WebSocket connection is closed; ``code`` and ``reason`` are its close frame's.

    ``code`` is 1005 when the peer gave none and 1006 when the connection was lost
    without a closing handshake (RFC 6455 §7.1.5). ``clean`` says whether the
    closing handshake completed.
    """

    def __init__(self, code: int, reason: str, clean: bool = True) -> None:
        super().__init__(f"connection closed: {code} {reason!r}".rstrip(), code)
        self.reason = reason
        self.clean = clean


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: code 1000 or 1001 (or none given) and a clean handshake."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or lost without a closing handshake."""


#: The one table of result codes and their exceptions: ``error_for`` looks a failed
#: call's code up here, and each class's ``code`` is set from it.
_BY_CODE: dict[int, type[Error]] = {
    _ffi.ERR_INVALID_ARGUMENT: InvalidArgument,
    _ffi.ERR_NOT_FOUND: NotFound,
    _ffi.ERR_CLOSED: Closed,
    _ffi.ERR_QUEUE_FULL: QueueFull,
    _ffi.ERR_STOPPED: Stopped,
    _ffi.ERR_INVALID_STATE: InvalidState,
    _ffi.ERR_IO: IOFailure,
    _ffi.ERR_BAD_HANDLE: BadHandle,
    _ffi.ERR_PANIC: Panic,
    _ffi.ERR_TLS: TLSError,
}
for _code, _cls in _BY_CODE.items():
    _cls.code = _code
del _code, _cls


def error_for(code: int) -> Error:
    """The exception for a failed call's result ``code``, with the thread's detail text."""
    detail_raw: bytes | None = _ffi.lib.wsq_last_error()
    detail = detail_raw.decode(errors="replace") if detail_raw else ""
    text_raw: bytes | None = _ffi.lib.wsq_strerror(code)
    text = text_raw.decode(errors="replace") if text_raw else "unknown result code"
    cls = _BY_CODE.get(code, Error)
    if detail.startswith(text):  # the engine's own errors already name their kind
        return cls(detail, code)
    return cls(f"{text}: {detail}" if detail else text, code)


def connection_closed(code: int, reason: str, clean: bool) -> ConnectionClosed:
    """The right :class:`ConnectionClosed` subclass for a close event."""
    ok = clean and code in (1000, 1001, 1005)
    return (ConnectionClosedOK if ok else ConnectionClosedError)(code, reason, clean)
