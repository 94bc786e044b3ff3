#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (mosquitto, the
# project with its dev extras in .venv) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi

VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
"$VENV/bin/python" -m ruff check edgeportrait tests benchmarks scripts
"$VENV/bin/python" -m mypy edgeportrait
exec "$VENV/bin/python" -m pytest -q "$@"
