#!/usr/bin/env bash
# Builds the engine's static library if needed, then vets and tests the Go
# binding (with the race detector). Exits non-zero on any failure.
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
go test -race -count=1 -timeout 300s ./...
