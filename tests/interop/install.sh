#!/usr/bin/env bash
# Installs what tests/interop/run.sh needs; idempotent, and quick when all is there.
# Called by tests/deps.sh (so by `make deps` and .ci/run). Needs root for apt-get.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# Python packages go into the tree's virtual environment (.venv at the repo root),
# never into the machine's Python (Debian's refuses them anyway: PEP 668).
venv="$(cd "$here/../.." && pwd)/.venv"
if [ ! -x "$venv/bin/python3" ]; then
    echo "interop deps: python: creating $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 ships venv's pip bootstrap separately.
        rm -rf "$venv"
        sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
fi
echo "interop deps: python (websockets, pytest) in .venv"
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

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
    # Without recommends: the browser, not the desktop daemons that come with it.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
