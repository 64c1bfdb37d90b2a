#!/usr/bin/env bash
# Installs what tests/interop/run.sh needs; idempotent, and quick when all is there.
# Called by tests/deps.sh (so by `make deps` and .ci/run). Needs root for apt-get.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

echo "interop deps: python (websockets, pytest)"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r "$here/requirements.txt"

# npm ci wipes node_modules every time; skip it when the installed tree came from
# the same lock file.
for dir in node browser; do
    stamp="$here/$dir/node_modules/.wsq-installed-lock"
    if [ -f "$stamp" ] && cmp -s "$here/$dir/package-lock.json" "$stamp"; then
        echo "interop deps: node ($dir) up to date"
        continue
    fi
    echo "interop deps: node ($dir): npm ci"
    # playwright-core downloads no browser, but make sure no postinstall tries.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here/$dir" --no-audit --no-fund --loglevel=error
    cp "$here/$dir/package-lock.json" "$stamp"
done

echo "interop deps: go (gorilla/websocket)"
(cd "$here/go" && go mod download)

if [ -x /usr/bin/chromium ]; then
    echo "interop deps: chromium present"
else
    echo "interop deps: chromium: apt-get install"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
