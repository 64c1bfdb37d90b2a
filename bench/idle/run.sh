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
#            for before/after comparisons in one sitting. Go servers (built here):
#            gorilla-go (bench/peers/gorilla-echo), gws-go (bench/peers/gws-echo),
#            wsqueue-go (gorilla's echo on the binding, bench/go/wsqueue-go-echo),
#            wsqueue-go-events (the binding's event style, examples/go/echo),
#            wsqueue-go-accept (gorilla's echo loop on the binding's own listener,
#            bench/go/wsqueue-go-accept: a goroutine per connection, no net/http),
#            nethttp-park (no WebSocket library: net/http hijacks and parks the
#            handler goroutine, bench/go/nethttp-park; the floor of any
#            goroutine-per-connection server that upgrades through net/http).
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
. bench/lib.sh
for server in $SERVERS; do
    case $server in
        gorilla-go)        (cd bench/peers/gorilla-echo && go build -o "$work/$server" .) ;;
        gws-go)            (cd bench/peers/gws-echo && go build -o "$work/$server" .) ;;
        wsqueue-go)        (cd bench/go/wsqueue-go-echo && go build -mod=mod -o "$work/$server" .) ;;
        wsqueue-go-events) (cd examples/go && go build -o "$work/$server" ./echo) ;;
        wsqueue-go-accept) (cd bench/go/wsqueue-go-accept && go build -mod=mod -o "$work/$server" .) ;;
        nethttp-park)      (cd bench/go/nethttp-park && go build -o "$work/$server" .) ;;
    esac
done

for round in $(seq "$REPEAT"); do
    for server in $SERVERS; do
        case $server in
            wsqueue-c)        bin=./build/echo_server; args=() ;;
            wsqueue-c-deflate-*) bin=./build/echo_server; args=(--deflate "${server#wsqueue-c-deflate-}") ;;
            wsqueue-c-before) bin=${BEFORE_DIR:?set BEFORE_DIR}/build/echo_server; args=() ;;
            gorilla-go | gws-go | wsqueue-go | wsqueue-go-events | wsqueue-go-accept | nethttp-park)
                bin=$work/$server; args=() ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        start_server "$bin" 0 "${args[@]}"
        echo "== round $round: $server" >&2
        line=$(python3 bench/idle/hold.py "$PORT" "$server_pid" --conns "$CONNS" --secs "$SECS" \
            --label "$server" ${HOLD_ARGS:-})
        echo "{\"round\":$round,${line#\{}"
        stop_server
    done
done
