#!/usr/bin/env bash
# User-space instructions per echoed message, counted by callgrind. The count does not
# depend on what else the machine runs, so a change of a few percent shows here where
# timed runs on a shared machine cannot separate it from noise. Not part of
# `make test`.
#
#   bash bench/compare/instructions.sh [LABEL=PROGRAM ...]
#       default: wsqueue-c=./build/echo_server (built here with `make examples`)
#
# Each PROGRAM takes a port (0 is passed) and prints "listening on 127.0.0.1:PORT", as
# every example and peer does; give a script to set its environment. The count is
# the whole process's (start-up included: a few million instructions) divided by the
# echoes the load generator verified, so runs of a few seconds under callgrind
# (about 50x slower) are enough. uWebSockets as bench/peers/uws-echo builds it
# (-march=native) does not run under valgrind.
#
# Environment: WINDOWS [16 1] messages in flight per connection; SECS [5];
# CONNS [100]; SIZE [32].
#
# Prints one line per server and window, e.g.
#   wsqueue-c window 16: 890 instructions per echo (1,198,944 echoes)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WINDOWS=${WINDOWS:-16 1}
SECS=${SECS:-5}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }
if [ $# -eq 0 ]; then
    set -- "wsqueue-c=./build/echo_server"
fi

BENCH_TARGET=$ROOT/bench/target
LOADGEN=$BENCH_TARGET/release/wsq-loadgen
echo "== building" >&2
make -s examples >&2
(cd bench/loadgen && CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release -q)

. bench/lib.sh

for spec in "$@"; do
    label=${spec%%=*}
    program=${spec#*=}
    for window in $WINDOWS; do
        SERVER_CPU=(valgrind --tool=callgrind "--callgrind-out-file=$work/callgrind.out.%p")
        rm -f "$work"/callgrind.out.*
        start_server "$program" 0
        result=$("$LOADGEN" "127.0.0.1:$PORT" --conns "$CONNS" --size "$SIZE" \
            --window "$window" --secs "$SECS" --warmup 0 --connect-timeout 20 | tail -1)
        stop_server  # the server exits on SIGTERM and callgrind writes its counts
        echoes=$(printf '%s' "$result" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["verified"] if d["ok"] else 0)')
        # One "summary:" line per output file (a file also has a "totals:" line with
        # the same count: summing both would double it).
        total=$(cat "$work"/callgrind.out.* | awk '/^summary:/ {s += $2} END {print s + 0}')
        if [ "$echoes" -eq 0 ] || [ "$total" -eq 0 ]; then
            echo "$label window $window: no count (the run failed: $result)" >&2
            exit 1
        fi
        python3 -c "import sys; t, e = int(sys.argv[1]), int(sys.argv[2]); print(f'$label window $window: {t // e:,} instructions per echo ({e:,} echoes)')" "$total" "$echoes"
    done
done
