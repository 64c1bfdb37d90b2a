#!/usr/bin/env bash
# Installs everything the test suites need, idempotently (fast when already there).
# Called by `make test` (through `make deps`) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
# pkg-config: the C suite checks the installed wsqueue.pc.
if ! command -v pkg-config >/dev/null; then
    apt-get update -qq && apt-get install -y -qq pkg-config
fi
if [ -f tests/interop/install.sh ]; then
    bash tests/interop/install.sh
fi
