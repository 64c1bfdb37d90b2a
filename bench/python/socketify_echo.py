"""Echo server on socketify (uWebSockets through CFFI), a peer for bench/python/run.sh.

    python3 socketify_echo.py [PORT=0]   prints "listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import socket
import sys

from socketify import App, OpCode


def free_port() -> int:
    # socketify does not report the port it bound for 0: take a free one first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(port: int) -> None:
    port = port or free_port()
    app = App()

    def message(ws: object, data: object, opcode: OpCode) -> None:
        ws.send(data, opcode)  # type: ignore[attr-defined]

    app.ws(
        "/*",
        {
            "compression": 0,
            "max_payload_length": 16 * 1024 * 1024,
            "idle_timeout": 0,
            "max_backpressure": 64 * 1024 * 1024,
            "message": message,
        },
    )
    app.listen(
        {"port": port, "host": "127.0.0.1"},
        lambda config: print(f"listening on 127.0.0.1:{port}", flush=True),
    )
    app.run()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
