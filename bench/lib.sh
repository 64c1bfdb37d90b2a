# Shared by the bench scripts (sourced from the repository root): a work directory
# removed on exit, and one server at a time started and stopped. A server prints
# "listening on 127.0.0.1:PORT" when it is ready (every example and peer does).
#
# Sets: work (the directory), server_pid (the running server, or empty), PORT;
# raw_mode (see raw_mode_for).
# Reads: SERVER_CPU, an array put in front of every server command (for example
# `taskset -c 0`); empty if the script did not set it.

work=$(mktemp -d)
server_pid=
if ! declare -p SERVER_CPU >/dev/null 2>&1; then
    SERVER_CPU=()
fi

bench_cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap bench_cleanup EXIT

# start_server COMMAND...: starts it in the background, its output in
# $work/server.log; sets PORT and server_pid once it listens. Exits the script with
# the server's output if it does not start.
start_server() {
    local log=$work/server.log
    # Emptied here, not by the redirection below: that runs in the background child,
    # maybe after the loop has read the previous server's line from the old log.
    : > "$log"
    "${SERVER_CPU[@]}" "$@" > "$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 200); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log" | head -1)
        [ -n "$PORT" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "server did not start: $*" >&2
    cat "$log" >&2
    exit 1
}

# raw_mode_for NAME: sets raw_mode to the load generator's arguments for the server
# NAME: the raw TCP echo (named raw-tcp in every bench script) speaks no WebSocket, so
# it is driven in raw mode; every other server gets none.
raw_mode_for() {
    raw_mode=()
    if [ "$1" = raw-tcp ]; then raw_mode=(--mode raw); fi
}

# stop_server [NAME]: stops the running server. With NAME, shows what it printed
# beyond its first line: under load that is a finding (errors, refused sends).
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if [ $# -gt 0 ] && [ "$(wc -l < "$work/server.log")" -gt 1 ]; then
        echo "-- $1 server output:" >&2
        tail -n +2 "$work/server.log" | head -20 >&2
    fi
}
