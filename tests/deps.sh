#!/usr/bin/env bash
# Installs everything the test suites need, idempotently (fast when already there).
# Called by `make test` (through `make deps`) and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f tests/interop/install.sh ]; then
    bash tests/interop/install.sh
fi
