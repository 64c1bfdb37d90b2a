#!/usr/bin/env bash
# Idle cost: memory and CPU of a server holding many silent WebSocket connections.
# Runs bench/idle/hold.py against each echo server in turn, REPEAT interleaved rounds,
# and prints one JSON line per run. Not part of `make test`.
#
#   bash bench/idle/run.sh [CONNS=10000] [SECS=30]
#
# Environment:
#   SERVERS  [wsqueue-c]  which servers; wsqueue-c-before is the same C echo example
#            built from another checkout (BEFORE_DIR, where `make examples` has run),
#            for before/after comparisons in one sitting.
#   REPEAT   [3] rounds over all servers.
#   HOLD_ARGS  [] extra hold.py options, e.g. "--deflate --message 1024" to offer
#            permessage-deflate and exchange one message per connection; with the
#            servers wsqueue-c-deflate-{off,shared,dedicated} (the C echo example with
#            that --deflate mode) this compares compression's memory cost.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-10000}
SECS=${2:-30}
SERVERS=${SERVERS:-wsqueue-c}
REPEAT=${REPEAT:-3}
# Each connection is one file on both sides; the client and the server are both
# children of this shell.
ulimit -n 20000

make -s examples >&2
work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

for round in $(seq "$REPEAT"); do
    for server in $SERVERS; do
        case $server in
            wsqueue-c)        bin=./build/echo_server; args=() ;;
            wsqueue-c-deflate-*) bin=./build/echo_server; args=(--deflate "${server#wsqueue-c-deflate-}") ;;
            wsqueue-c-before) bin=${BEFORE_DIR:?set BEFORE_DIR}/build/echo_server; args=() ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        "$bin" 0 "${args[@]}" > "$work/server.log" 2>&1 &
        server_pid=$!
        port=
        for _ in $(seq 200); do
            port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/server.log")
            [ -n "$port" ] && break
            sleep 0.05
        done
        [ -n "$port" ] || { cat "$work/server.log" >&2; exit 1; }
        echo "== round $round: $server" >&2
        line=$(python3 bench/idle/hold.py "$port" "$server_pid" --conns "$CONNS" --secs "$SECS" \
            --label "$server" ${HOLD_ARGS:-})
        echo "{\"round\":$round,${line#\{}"
        kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
        server_pid=
    done
done
