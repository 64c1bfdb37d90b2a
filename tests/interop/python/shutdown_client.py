"""Holds one connection to a server that run.sh is about to stop with SIGTERM.

Prints "ready" once a round trip worked, then waits for the server to close the
connection and exits 0 only if it did so with a clean closing handshake and code 1001
(going away), as echo_server and chat_server promise for a graceful stop.

    python3 shutdown_client.py WS_URL
"""

import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# Hang guard for the whole wait: the servers' stop deadline is 2 s.
HANG_GUARD_S = 60


async def main(url):
    async with connect(url, ping_interval=None, close_timeout=30) as ws:
        await ws.send("still here")
        reply = await ws.recv()
        # chat_server first sends a welcome, echo_server echoes: either proves the link.
        print("ready", flush=True)
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        if rcvd is None:
            print(f"FAIL: no close frame from the server (first reply {reply!r:.60})")
            return 1
        if rcvd.code != 1001:
            print(f"FAIL: close code {rcvd.code} ({rcvd.reason!r}), expected 1001")
            return 1
        print(f"closed with {rcvd.code} {rcvd.reason!r}")
        return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(asyncio.wait_for(main(sys.argv[1]), HANG_GUARD_S)))
