"""Echo server on Python `websockets` with permessage-deflate as wsqueue's default
shared mode: no context takeover either way, zlib level 6, memLevel 8.

    python3 websockets_echo.py   prints "listening on 127.0.0.1:PORT"
"""

import asyncio

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    deflate = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        compress_settings={"level": 6, "memLevel": 8},
    )
    async with serve(
        echo, "127.0.0.1", 0, compression=None, extensions=[deflate], max_size=None
    ) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
