"""Echo server on the Python binding (asyncio), same contract as examples/c/echo_server.c.

    python3 examples/python/echo.py [port=9002] [--deflate off|shared|dedicated]

Echoes every message exactly (text as text, binary as binary, up to 16 MiB), prints
``listening on 127.0.0.1:PORT`` once ready (port 0 picks a free one), and on SIGINT
or SIGTERM closes every client with 1001 after its queued messages and exits 0.
``--deflate`` picks the permessage-deflate mode, as the C echo's option does (default:
the engine's, shared).
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys

import wsqueue
import wsqueue.asyncio

MiB = 1024 * 1024
# Messages up to 16 MiB, compressed or not: the engine holds a compressed frame to
# the same limit, and deflate makes incompressible data slightly larger (a few bytes
# per 64 KiB block), hence the margin.
MAX_MESSAGE = 16 * MiB + 64 * 1024
# As the C echo: enough for the 19,000-connection benchmark (not answered with 503).
MAX_CONNECTIONS = 19_000
# As the C echo: the engine stops reading a client whose unsent echoes are over the
# soft limit, so a client that sends a lot before it reads anything (the interop
# suite sends 160 MiB) would wait for its echoes while we wait for it to read. Room
# for that much; past the hard limit the client is closed with 1008, never dropped
# silently.
SEND_QUEUE_SOFT_LIMIT = 192 * MiB
SEND_QUEUE_LOW_WATER = 96 * MiB
SEND_QUEUE_HARD_LIMIT = 448 * MiB


async def echo(connection: wsqueue.asyncio.ServerConnection) -> None:
    # send waits while this client's unsent echoes are over the soft limit, so a
    # client that sends without reading is slowed down instead of buffered forever.
    async for message in connection:
        await connection.send(message)


def raise_open_file_limit() -> None:
    # Every connection is a descriptor: go from the soft limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


DEFLATE_MODES = {
    "off": wsqueue.DEFLATE_OFF,
    "shared": wsqueue.DEFLATE_SHARED,
    "dedicated": wsqueue.DEFLATE_DEDICATED,
}


def parse_args(argv: list[str]) -> tuple[int, int]:
    """The port (first argument) and the deflate mode (``--deflate MODE`` after it)."""
    port = int(argv[0]) if argv and not argv[0].startswith("--") else 9002
    rest = argv[1:] if argv and not argv[0].startswith("--") else argv
    deflate = wsqueue.DEFLATE_SHARED
    if rest:
        if len(rest) != 2 or rest[0] != "--deflate" or rest[1] not in DEFLATE_MODES:
            raise SystemExit("usage: echo.py [port=9002] [--deflate off|shared|dedicated]")
        deflate = DEFLATE_MODES[rest[1]]
    return port, deflate


async def main(port: int, deflate: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with wsqueue.asyncio.serve(
        echo,
        "127.0.0.1",
        port,
        max_size=MAX_MESSAGE,
        max_connections=MAX_CONNECTIONS,
        send_queue_soft_limit=SEND_QUEUE_SOFT_LIMIT,
        send_queue_low_water=SEND_QUEUE_LOW_WATER,
        send_queue_hard_limit=SEND_QUEUE_HARD_LIMIT,
        slow_consumer=wsqueue.SLOW_CONSUMER_CLOSE,
        deflate=deflate,
    ) as server:
        print(f"listening on 127.0.0.1:{server.port}", flush=True)
        await stop.wait()
    # Leaving the block closed every connection (1001) and freed the server.


if __name__ == "__main__":
    raise_open_file_limit()
    try:
        asyncio.run(main(*parse_args(sys.argv[1:])))
    except wsqueue.Error as exc:
        print(f"echo: {exc}", file=sys.stderr)
        sys.exit(1)
