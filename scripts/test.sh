#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine (mosquitto, chromium and
# chromium-driver, gcc, the project with its dev extras in .venv) and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's packages the tests use, installed only when missing: the broker for the MQTT
# tests, Chromium with its WebDriver for the kiosk page's browser test, and a C compiler so
# that the install below builds the compositor's C library and its tests test it (without
# one edgeportrait works on its OpenCV path, and those tests skip).
MISSING=()
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || MISSING+=(gcc libc6-dev)
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    MISSING+=(mosquitto)
fi
command -v chromium >/dev/null 2>&1 || MISSING+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || MISSING+=(chromium-driver)
if [ "${#MISSING[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${MISSING[@]}" >/dev/null
fi

VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"

# The data set's sources (Debian's opencv-doc, two wheels; checked against pinned sha256),
# so that tests/test_heldout.py can check that the committed held-out part is what the
# repository's own script makes. Fetched once into .cache/ (about 120 MB of downloads).
SOURCES=.cache/dataset-sources
if ! "$VENV/bin/python" -m edgeportrait_build.dataset fetch "$SOURCES" >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq || true
    "$VENV/bin/python" -m edgeportrait_build.dataset fetch "$SOURCES" \
        || echo "warning: the data set's sources could not be fetched; the reproducibility test will skip" >&2
fi
# Home Assistant 2024.3.3 in a venv of its own, so tests/test_discovery.py can have it check
# our discovery messages with its own schemas (about a minute, once; pinned, no resolution).
bash scripts/ha-venv.sh >/dev/null 2>&1 \
    || echo "warning: Home Assistant's venv could not be made; its discovery checks will skip" >&2
"$VENV/bin/python" -m ruff check edgeportrait edgeportrait_build tests benchmarks scripts hatch_build.py
"$VENV/bin/python" -m mypy edgeportrait edgeportrait_build
exec "$VENV/bin/python" -m pytest -q "$@"
