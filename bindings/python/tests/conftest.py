"""Shared helpers: run a coroutine with an upper bound, so a hang fails the test
instead of stalling the suite (the bound is a deadlock guard, not a speed check)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Upper bound on any one test's event loop; generous for a loaded 2-core machine.
GUARD_SECONDS = 120


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, GUARD_SECONDS)

    return asyncio.run(guarded())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    """Threads of this process, native ones too (the engine's reactors).

    Waits first (10 s at most) for threads that are on their way out: the test's own
    client threads (websockets' sync client reads in a background thread that ends
    shortly after close returns), and joined Python threads, whose OS thread exits a
    moment after join returns. A leaked thread never leaves, and is counted.
    """
    for _ in range(1000):
        python = threading.enumerate()
        clients = [t for t in python if t is not threading.main_thread() and not t.name.startswith("wsqueue")]
        if not clients and len(os.listdir("/proc/self/task")) <= len(python):
            break
        time.sleep(0.01)
    return len(os.listdir("/proc/self/task"))


async def eventually(predicate: Any, what: str) -> None:
    """Waits (yielding to the loop) until ``predicate()`` holds; the guard above fails
    the test if it never does."""
    while not predicate():
        await asyncio.sleep(0.01)
