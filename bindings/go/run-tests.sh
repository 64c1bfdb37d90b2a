#!/usr/bin/env bash
# Builds the engine's static library if needed, then vets, lints (staticcheck)
# and tests the Go binding and the Go examples (with the race detector). Exits
# non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ ! -f "$root/target/release/libwsqueue.a" ] || [ -n "$(find "$root/src" "$root/Cargo.toml" -newer "$root/target/release/libwsqueue.a" -print -quit)" ]; then
    (cd "$root" && cargo build --release --lib)
fi
cd "$here"
go mod download
go vet ./...
(cd "$root/examples/go" && go vet ./...)   # the Go examples, built and run by the tests

# staticcheck, pinned, installed once into the tree (target/ is not committed).
staticcheck_version=v0.8.2
gobin="$root/target/go-tools/$staticcheck_version"
if [ ! -x "$gobin/staticcheck" ]; then
    if ! GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"; then
        echo "run-tests.sh: SKIPPED staticcheck: could not fetch honnef.co/go/tools@$staticcheck_version from the Go module proxy" >&2
    fi
fi
if [ -x "$gobin/staticcheck" ]; then
    "$gobin/staticcheck" ./...
    (cd "$root/examples/go" && "$gobin/staticcheck" ./...)
    echo "staticcheck $staticcheck_version: clean"
fi

go test -race -count=1 -timeout 300s ./...
