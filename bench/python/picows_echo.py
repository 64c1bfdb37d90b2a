"""Echo server on picows (Cython, asyncio), a peer for bench/python/run.sh.

    python3 picows_echo.py [PORT=0]   prints "listening on 127.0.0.1:PORT"

picows hands over frames, not messages; the load generator sends one frame per
message, so echoing each data frame is an exact echo here.
"""

from __future__ import annotations

import asyncio
import sys

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(frame.msg_type, frame.get_payload_as_bytes())


async def main(port: int) -> None:
    def factory(request: WSUpgradeRequest) -> Echo:
        return Echo()

    server = await ws_create_server(factory, "127.0.0.1", port, max_frame_size=16 * 1024 * 1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
