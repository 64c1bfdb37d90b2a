"""Chat room on the Python binding (asyncio): the same chat as examples/c/chat_server.c,
serving the same page (examples/web) and the WebSocket on one port.

    python3 examples/python/chat.py [port=9001] [static_dir=examples/web]

Every message the server sends is one JSON object:
    {"type":"welcome","you":N,"text":"welcome, you are user N"}   to a new user only
    {"type":"join","user":N,"text":"user N joined"}               to everyone
    {"type":"chat","from":N,"text":"..."}                         to everyone
    {"type":"leave","user":N,"text":"user N left"}                to everyone

Binary messages are ignored; text over 64 KiB is refused with close 1009. A user
whose queued lines would pass 16 MiB has stopped reading: the slow-consumer policy
closes it with 1008 and everyone sees it leave.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from pathlib import Path

import wsqueue
import wsqueue.asyncio

DEFAULT_PORT = 9001
DEFAULT_STATIC_DIR = str(Path(__file__).resolve().parent.parent / "web")
MAX_MESSAGE = 64 * 1024  # a chat line, not a file transfer

users = itertools.count(1)
room: set[wsqueue.asyncio.ServerConnection] = set()


def encode(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def say(payload: dict[str, object]) -> None:
    # One frame encoded once for the whole room (wsq_broadcast); users over their
    # soft limit take it too, the slow-consumer policy handles the hard limit.
    wsqueue.asyncio.broadcast(room, encode(payload))


async def chat(connection: wsqueue.asyncio.ServerConnection) -> None:
    user = next(users)
    await connection.send(
        encode({"type": "welcome", "you": user, "text": f"welcome, you are user {user}"})
    )
    room.add(connection)
    say({"type": "join", "user": user, "text": f"user {user} joined"})
    try:
        async for message in connection:
            if isinstance(message, str):  # the room speaks text
                say({"type": "chat", "from": user, "text": message})
    finally:
        room.discard(connection)
        say({"type": "leave", "user": user, "text": f"user {user} left"})


async def main(port: int, static_dir: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with wsqueue.asyncio.serve(
        chat,
        "127.0.0.1",
        port,
        max_size=MAX_MESSAGE,
        static_dir=static_dir,
        send_queue_soft_limit=1024 * 1024,
        send_queue_low_water=256 * 1024,
        send_queue_hard_limit=16 * 1024 * 1024,
        slow_consumer=wsqueue.SLOW_CONSUMER_CLOSE,
    ) as server:
        print(f"listening on http://127.0.0.1:{server.port}/", flush=True)
        await stop.wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        asyncio.run(
            main(
                int(args[0]) if args else DEFAULT_PORT,
                args[1] if len(args) > 1 else DEFAULT_STATIC_DIR,
            )
        )
    except wsqueue.Error as exc:
        print(f"chat: {exc}", file=sys.stderr)
        sys.exit(1)
