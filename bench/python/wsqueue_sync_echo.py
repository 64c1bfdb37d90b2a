"""Echo server on wsqueue.sync (a thread per connection), for bench/python/run.sh.

    python3 wsqueue_sync_echo.py [PORT=0]   prints "listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import sys

import wsqueue.sync


def echo(connection: wsqueue.sync.ServerConnection) -> None:
    for message in connection:
        connection.send(message)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with wsqueue.sync.serve(echo, "127.0.0.1", port, max_connections=19_000) as server:
        print(f"listening on 127.0.0.1:{server.port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
