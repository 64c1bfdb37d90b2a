#!/usr/bin/env bash
# Go echo benchmark: the same load generator (bench/loadgen) against gorilla's echo
# (bench/peers/gorilla-echo), gws's echo (bench/peers/gws-echo), the gorilla code on the
# wsqueue Go binding (bench/go/wsqueue-go-echo, only the import changed) and the
# binding's event style (examples/go/echo: a Handler on ListenHandler, callbacks on the
# dispatcher; wsqueue-go-events-pool: the same on a worker pool) and gorilla's echo
# loop on the binding's own listener (bench/go/wsqueue-go-accept: Listen and Accept,
# a goroutine per connection, no net/http), interleaved round by round. Prints one JSON line per run, then the median msg/s per scenario
# and each server's ratio to gorilla, then the median server CPU time per message
# (less sensitive than msg/s to other load on a shared machine).
# Not part of any test suite.
#
#   bash bench/go/run.sh [SECS=5]     env: ROUNDS [3] CONNS [100] SIZE [32] WINDOWS [1 16]
#                                           SERVERS [gorilla-echo gws-echo wsqueue-go-echo wsqueue-go-events
#                                                    wsqueue-go-events-pool wsqueue-go-accept]
#                                           EXTRA_SERVERS [label=path ...: prebuilt servers, for an A/B]
#
# Pinned like bench/run.sh: server on CPU 0, load generator on CPU 1. gorilla and gws
# run with GOMAXPROCS=1; the binding with GOMAXPROCS=1 plus the engine's reactor threads
# (the engine counts the cores it may run on: one when pinned) and its dispatcher.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECS=${1:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
WINDOWS=${WINDOWS:-1 16}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/bench/target}
BIN=$CARGO_TARGET_DIR/release
(cd "$ROOT" && cargo build --release --lib -q)
(cd bench/loadgen && cargo build --release -q)
SERVER_CPU=(taskset -c 0 env GOMAXPROCS=1)
. bench/lib.sh
(cd bench/peers/gorilla-echo && go build -o "$work/gorilla-echo" .)
(cd bench/go/wsqueue-go-echo && go build -mod=mod -o "$work/wsqueue-go-echo" .)
(cd bench/peers/gws-echo && go build -o "$work/gws-echo" .)
(cd bench/go/wsqueue-go-accept && go build -mod=mod -o "$work/wsqueue-go-accept" .)
(cd examples/go && go build -o "$work/wsqueue-go-events" ./echo)
# The same event-style echo with its callbacks on a worker pool instead of the
# dispatcher (exec keeps the pid that the load generator samples).
printf '#!/bin/sh\nWSQUEUE_ECHO_WORKERS=0 exec "%s" "$@"\n' "$work/wsqueue-go-events" > "$work/wsqueue-go-events-pool"
chmod +x "$work/wsqueue-go-events-pool"
# A/B: EXTRA_SERVERS="label=/path/to/server ..." adds prebuilt servers (an older build
# kept for comparison) under their labels; list the labels in SERVERS to run them.
for extra in ${EXTRA_SERVERS:-}; do
    cp "${extra#*=}" "$work/${extra%%=*}"
done
SERVERS=${SERVERS:-gorilla-echo gws-echo wsqueue-go-echo wsqueue-go-events wsqueue-go-events-pool wsqueue-go-accept}

failed=0
for round in $(seq "$ROUNDS"); do
    for server in $SERVERS; do
        start_server "$work/$server" 0
        for window in $WINDOWS; do
            taskset -c 1 "$BIN/wsq-loadgen" "127.0.0.1:$PORT" --conns "$CONNS" --size "$SIZE" \
                --window "$window" --secs "$SECS" --warmup 2 --threads 1 \
                --label "$server" --server-pid "$server_pid" | tee -a "$work/results.jsonl" || failed=1
        done
        stop_server "$server"
    done
done
python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for r in rows:
    med.setdefault((r["label"], r["window"]), []).append(r["msgs_per_sec"])
for w in sorted({k[1] for k in med}):
    g = statistics.median(med[("gorilla-echo", w)]) if ("gorilla-echo", w) in med else None
    parts = []
    for label in dict.fromkeys(k[0] for k in med):
        if (label, w) not in med:
            continue
        m = statistics.median(med[(label, w)])
        ratio = f" ({m / g:.2f}x gorilla)" if g else ""
        parts.append(f"{label} {m:,.0f}{ratio}")
    print(f"window {w}, msg/s, medians of {len(next(iter(med.values())))}: " + ", ".join(parts))
cpu = {}
for r in rows:
    if r["msgs_per_sec"] > 0:
        cpu.setdefault((r["label"], r["window"]), []).append(r["server_cpu"] / r["msgs_per_sec"] * 1e6)
for w in sorted({k[1] for k in cpu}):
    parts = [f"{label} {statistics.median(cpu[(label, w)]):.2f}"
             for label in dict.fromkeys(k[0] for k in cpu) if (label, w) in cpu]
    print(f"window {w}, server CPU us per message, medians: " + ", ".join(parts))
PY
exit $failed
