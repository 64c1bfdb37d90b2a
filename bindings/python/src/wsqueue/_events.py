"""Event objects returned by :meth:`wsqueue.Server.poll`, one class per ``WSQ_EVENT_*``.

Each is a plain copy of the C event: the library's memory is released as soon as a
batch has been copied, so these objects stay valid for as long as Python holds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator


class Headers:
    """Request headers in arrival order, looked up without regard to case.

    Kept as one packed string until first used: a connection holds its request for
    its whole life, and one string costs far less memory than a tuple of two
    strings per header (idle connections are what this saves for).
    """

    __slots__ = ("_items_cache", "_packed")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items_cache: list[tuple[str, str]] | None = items
        self._packed = ""

    @classmethod
    def packed(cls, packed: str) -> Headers:
        """Headers from ``"name\0value\0name\0value"`` (C strings hold no NUL)."""
        headers = cls.__new__(cls)
        headers._items_cache = None
        headers._packed = packed
        return headers

    @property
    def _items(self) -> list[tuple[str, str]]:
        items = self._items_cache
        if items is None:
            parts = self._packed.split("\0") if self._packed else []
            items = list(zip(parts[0::2], parts[1::2]))
            self._items_cache = items
        return items

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, or ``default``."""
        lower = name.lower()
        for key, value in self._items:
            if key.lower() == lower:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        lower = name.lower()
        return [value for key, value in self._items if key.lower() == lower]

    def raw_items(self) -> list[tuple[str, str]]:
        """All ``(name, value)`` pairs as the client sent them."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclasses.dataclass(slots=True)
class OpenEvent:
    """``WSQ_EVENT_OPEN``: the handshake completed."""

    conn: int
    tag: int
    path: str
    remote_address: str
    subprotocol: str | None
    headers: Headers


@dataclasses.dataclass(slots=True)
class UpgradeRequestEvent:
    """``WSQ_EVENT_UPGRADE_REQUEST`` (manual accept): answer with accept or reject.

    ``subprotocol`` is the server's would-be choice from ``Config.subprotocols``.
    """

    conn: int
    tag: int
    path: str
    remote_address: str
    subprotocol: str | None
    headers: Headers


@dataclasses.dataclass(slots=True)
class MessageEvent:
    """``WSQ_EVENT_MESSAGE``: a complete message, ``str`` for text, ``bytes`` for binary."""

    conn: int
    tag: int
    data: str | bytes


@dataclasses.dataclass(slots=True)
class CloseEvent:
    """``WSQ_EVENT_CLOSE``: the connection is gone (its last event)."""

    conn: int
    tag: int
    code: int
    reason: str
    clean: bool
    unsent_messages: int


@dataclasses.dataclass(slots=True)
class DrainEvent:
    """``WSQ_EVENT_DRAIN``: the buffered amount fell to the low-water mark."""

    conn: int
    tag: int


@dataclasses.dataclass(slots=True)
class PingEvent:
    """``WSQ_EVENT_PING`` (with ``deliver_ping_pong``): already answered by the engine."""

    conn: int
    tag: int
    data: bytes


@dataclasses.dataclass(slots=True)
class PongEvent:
    """``WSQ_EVENT_PONG`` (with ``deliver_ping_pong``)."""

    conn: int
    tag: int
    data: bytes


Event = (
    OpenEvent
    | UpgradeRequestEvent
    | MessageEvent
    | CloseEvent
    | DrainEvent
    | PingEvent
    | PongEvent
)
