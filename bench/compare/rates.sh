#!/usr/bin/env bash
# Latency at equal absolute rates: the load generator's rate mode (open loop) against
# each server at the same rates, servers and load generators interleaved run by run
# (one fresh server start per run), pinned like bench/compare/run.sh (server on CPU 0,
# load generator on CPU 1). For the p50/p99 of one server against another at the same
# offered load, and for a load generator against another one (before/after a change
# to it) in one sitting. Builds nothing beyond what bench/compare/run.sh builds; run
# that once first (or `make examples` and the cargo builds it does).
#
#   bash bench/compare/rates.sh
#
# Environment (defaults in brackets):
#   SERVERS   [raw-tcp uws wsqueue-c]  (as bench/compare/run.sh names them)
#   RATES     [600000 1000000]          msg/s over all connections
#   LOADGENS  [new=bench/target/release/wsq-loadgen]  NAME=BINARY[,ARG...] ...: each
#             run is repeated with each of them, extra arguments after commas (e.g.
#             old=/tmp/old/wsq-loadgen new=... ms=bench/target/release/wsq-loadgen,--tick-us,1000)
#   ROUNDS [3]  SECS [3]  WARMUP [1]  CONNS [100]  SIZE [32]
#   OUT [bench/target/rates-DATE.jsonl]  every run's JSON line, tagged with the
#             load generator's name, the round and `noisy` (others above NOISY [0.25]
#             cores); a table of medians is printed at the end. Before each run the
#             script waits (up to QUIET_WAIT [60] s) for a second in which the machine
#             was busy less than NOISY cores, and a noisy run is run again, up to
#             RERUN_NOISY [1] times (every attempt is kept; the table prefers quiet ones).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SERVERS=${SERVERS:-raw-tcp uws wsqueue-c}
RATES=${RATES:-600000 1000000}
LOADGENS=${LOADGENS:-new=$ROOT/bench/target/release/wsq-loadgen}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
NOISY=${NOISY:-0.25}
SERVER_PING_MS=${SERVER_PING_MS:-5000}
QUIET_WAIT=${QUIET_WAIT:-60}
RERUN_NOISY=${RERUN_NOISY:-1}
OUT=${OUT:-$ROOT/bench/target/rates-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
BENCH_TARGET=$ROOT/bench/target
BIN=$BENCH_TARGET/release
SERVER_CPU=(taskset -c 0)
mkdir -p "$(dirname "$OUT")"
: > "$OUT"

. bench/lib.sh

start_named() {
    case $1 in
        raw-tcp)   start_server "$BIN/raw-tcp-echo" 0 ;;
        uws)       start_server "$BENCH_TARGET/uws/uws-echo" 0 ;;
        wsqueue-c) start_server env ECHO_PING_INTERVAL_MS="$SERVER_PING_MS" ./build/echo_server 0 ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

# Busy cores of the whole machine over the next second.
busy_now() {
    python3 - <<'PY'
import time
def busy():
    v = [float(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)
b0, t0 = busy(); time.sleep(1); b1, t1 = busy()
import os
print((b1 - b0) / (t1 - t0) * os.cpu_count())
PY
}
wait_quiet() {
    local i
    for i in $(seq "$QUIET_WAIT"); do
        python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$(busy_now)" "$NOISY" && return 0
    done
    echo "   (still busy after ${QUIET_WAIT}s: running anyway)" >&2
}

failed=0
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq "$ROUNDS"); do
    for rate in $RATES; do
        for server in $SERVERS; do
            for lg in $LOADGENS; do
              for attempt in $(seq 0 "$RERUN_NOISY"); do
                wait_quiet
                name=${lg%%=*}
                IFS=, read -r -a lgcmd <<< "${lg#*=}"
                raw_mode_for "$server"
                start_named "$server"
                line=$(taskset -c 1 "${lgcmd[@]:0:1}" "127.0.0.1:$PORT" "${raw_mode[@]}" --conns "$CONNS" --size "$SIZE" \
                    --rate "$rate" --secs "$SECS" --warmup "$WARMUP" --label "$server" \
                    --server-pid "$server_pid" "${lgcmd[@]:1}") || failed=1
                stop_server "$server"
                if [ -z "$line" ]; then
                    echo "no result from ${lgcmd[*]}" >&2
                    failed=1
                    continue
                fi
                line=${line/\{/\{\"loadgen\":\"$name\",\"round\":$round,\"attempt\":$attempt,}
                line=$(python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); o=r["others_cpu"]; r["noisy"]=o is not None and o>float(sys.argv[1]); print(json.dumps(r))' "$NOISY" <<< "$line")
                echo "$line" >> "$OUT"
                noisy=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["noisy"])' <<< "$line")
                python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("   %-9s %-4s %8d  p50 %7.1f  p99 %7.1f us  loadgen cpu %.2f  server cpu %s  others %s%s  ok %s" % (r["label"], r["loadgen"], r["rate"], r["lat_p50_us"], r["lat_p99_us"], r["loadgen_cpu"], r["server_cpu"], r["others_cpu"], " NOISY" if r["noisy"] else "", r["ok"]), file=sys.stderr)' <<< "$line"
                [ "$noisy" = True ] || break
              done
            done
        done
    done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "== results: $OUT" >&2
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
keys = []
for r in rows:
    k = (r["rate"], r["loadgen"], r["label"])
    if k not in keys:
        keys.append(k)
print("| rate | loadgen | server | runs (noisy) | p50 us | p99 us | p99 range | send lag p99 us | loadgen cpu | server cpu |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k in keys:
    rs = [r for r in rows if (r["rate"], r["loadgen"], r["label"]) == k and r["ok"]]
    quiet = [r for r in rs if not r["noisy"]]
    use = quiet if len(quiet) >= 2 or len(quiet) == len(rs) else rs
    if not use:
        print(f"| {k[0]:,.0f} | {k[1]} | {k[2]} | 0 | - | - | - | - | - | - |")
        continue
    p99 = [r["lat_p99_us"] for r in use]
    print(f"| {k[0]:,.0f} | {k[1]} | {k[2]} | {len(rs)} ({len(rs) - len(quiet)}) | "
          f"{med([r['lat_p50_us'] for r in use]):,.0f} | {med(p99):,.0f} | {min(p99):,.0f}-{max(p99):,.0f} | "
          f"{med([r.get('send_lag_p99_us', float('nan')) for r in use]):,.0f} | {med([r['loadgen_cpu'] for r in use]):.2f} | {med([r['server_cpu'] or 0 for r in use]):.2f} |")
PY
exit $failed
