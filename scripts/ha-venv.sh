#!/usr/bin/env bash
# Makes the virtual environment in which tests/test_discovery.py lets Home Assistant
# 2024.3.3 (the newest that runs on Python 3.11) check our discovery messages with its
# own schemas. Home Assistant is never a dependency of the project: it lives here, apart.
# Pinned, and installed without dependency resolution (pip would backtrack for hours
# over Home Assistant's Bluetooth pins otherwise).
#   usage: scripts/ha-venv.sh [DIR]      (default .cache/havenv-2024.3.3)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.cache/havenv-2024.3.3}"
if [ -x "$DIR/bin/python" ] && "$DIR/bin/python" -c "import homeassistant.components.mqtt.discovery" 2>/dev/null; then
    exit 0
fi
rm -rf "$DIR"
python3 -m venv "$DIR"
"$DIR/bin/pip" install -q --disable-pip-version-check --no-deps -r tests/ha-2024.3.3-requirements.txt
"$DIR/bin/python" -c "import homeassistant.components.mqtt.discovery"
