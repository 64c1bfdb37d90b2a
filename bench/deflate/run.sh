#!/usr/bin/env bash
# Compressed echo, side by side: the same `ws` client load (client.mjs, permessage-
# deflate without context takeover, level 6) against wsqueue's C echo example (its
# default: shared mode, level 6), a Node `ws` echo server and a Python `websockets` echo
# server configured the same way, for realistic JSON text of 1 KiB and 64 KiB. Server
# on CPU 0, client on CPU 1. Prints one JSON line per run. Not part of `make test`.
#
#   bash bench/deflate/run.sh [SECS=5]
#
# Needs `make examples` and the interop clients (tests/interop/install.sh: .venv with
# websockets, tests/interop/node/node_modules with ws).
# Environment: SERVERS [wsqueue-c ws websockets; also wsqueue-c-level1: the C echo
# example with --deflate-level 1], SIZES [1024 65536], CONNS [20],
# WINDOW [4], REPEAT [1].
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
SERVERS=${SERVERS:-wsqueue-c ws websockets}
SIZES=${SIZES:-1024 65536}
CONNS=${CONNS:-20}
WINDOW=${WINDOW:-4}
REPEAT=${REPEAT:-1}
py=.venv/bin/python3
SERVER_CPU=(taskset -c 0)
. bench/lib.sh

for round in $(seq "$REPEAT"); do
    for size in $SIZES; do
        for server in $SERVERS; do
            case $server in
                wsqueue-c) cmd=(./build/echo_server 0) ;;
                wsqueue-c-level1) cmd=(./build/echo_server 0 --deflate-level 1) ;;
                ws) cmd=(node bench/deflate/ws_echo.mjs) ;;
                websockets) cmd=("$py" bench/deflate/websockets_echo.py) ;;
                *) echo "unknown server $server" >&2; exit 2 ;;
            esac
            start_server "${cmd[@]}"
            line=$(taskset -c 1 node bench/deflate/client.mjs "ws://127.0.0.1:$PORT/" \
                --conns "$CONNS" --size "$size" --window "$WINDOW" --secs "$SECS")
            echo "{\"round\":$round,\"server\":\"$server\",${line#\{}"
            stop_server
        done
    done
done
