"""Echo server on the Python `websockets` package (asyncio), a slow reference peer
for bench/run.sh.

    python3 echo.py [PORT=0]   prints "listening on 127.0.0.1:PORT"
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    # No compression: none of the other servers negotiates it, and it would cost
    # CPU on 32-byte messages without saving anything.
    async with serve(echo, "127.0.0.1", port, compression=None, max_size=None) as server:
        host, bound = server.sockets[0].getsockname()[:2]
        print(f"listening on {host}:{bound}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
