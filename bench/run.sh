#!/usr/bin/env bash
# Side-by-side echo benchmark: the same load generator against our C echo_server
# (libwsqueue) and a tokio-tungstenite echo server, one after the other, in one run.
# Prints one JSON line per run and the ratios ours/peer. Not part of `make test`.
#   bash bench/run.sh [SECS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
make -s examples
(cd bench/loadgen && cargo build --release -q)
(cd bench/peers/tokio-echo && cargo build --release -q)
LOADGEN=bench/loadgen/target/release/wsq-loadgen

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# Starts a server that prints "listening on 127.0.0.1:PORT"; sets PORT.
start_server() {
    local log; log=$(mktemp)
    "$@" > "$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        sleep 0.05
    done
    echo "server did not start: $*"; cat "$log"; exit 1
}

run_one() { # name window
    "$LOADGEN" "127.0.0.1:$PORT" --conns 100 --size 32 --window "$2" --secs "$SECS" --warmup 2 --threads 2 \
        | sed "s/^{/{\"server\":\"$1\",/"
}

declare -A rate
for server in wsqueue tokio-tungstenite; do
    if [ "$server" = wsqueue ]; then
        start_server ./build/echo_server 0          # reactor threads: one per core (2)
    else
        start_server bench/peers/tokio-echo/target/release/tokio-echo 0 2
    fi
    for window in 1 16; do
        line=$(run_one "$server" "$window")
        echo "$line"
        rate[$server-$window]=$(echo "$line" | sed 's/.*"msgs_per_sec":\([0-9]*\).*/\1/')
    done
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
done
for window in 1 16; do
    awk -v a="${rate[wsqueue-$window]}" -v b="${rate[tokio-tungstenite-$window]}" -v w="$window" \
        'BEGIN { printf "window %2d: wsqueue %d msg/s, tokio-tungstenite %d msg/s, ratio %.2f\n", w, a, b, a / b }'
done
