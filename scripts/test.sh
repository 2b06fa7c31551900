#!/usr/bin/env bash
# Set up, check the layering and the style, and run the whole test suite (unit, then integration on a local Ray cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The report tests drive Debian's headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium for the report tests..." >&2
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: chromium is missing and cannot be installed here; the report browser tests will fail" >&2
    fi
fi
# The floors of the code (import-linter contracts in pyproject.toml) and its style (ruff), before the tests.
.venv/bin/lint-imports --no-cache
.venv/bin/ruff check --no-cache .
exec .venv/bin/python -m pytest "$@"
