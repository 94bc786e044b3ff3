"""Where the daemon keeps its state and its caches: systemd's directories, else the XDG/home defaults.

Under systemd, ``StateDirectory=`` and ``CacheDirectory=`` hand the service its
directories in ``$STATE_DIRECTORY`` and ``$CACHE_DIRECTORY``. The unit may list
several, and systemd then joins them with ':'; the first is ours.
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "edgeportrait"


def systemd_dir(variable: str) -> Path | None:
    """The first directory of a systemd directory variable (``STATE_DIRECTORY``...), None if unset or empty."""
    value = os.environ.get(variable)
    if not value:
        return None
    return Path(value.split(":")[0])


def state_dir() -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=) or $XDG_STATE_HOME/edgeportrait (~/.local/state/edgeportrait)."""
    found = systemd_dir("STATE_DIRECTORY")
    if found is not None:
        return found
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP


def cache_dir() -> Path:
    """$CACHE_DIRECTORY (systemd CacheDirectory=) or ~/.cache/edgeportrait."""
    found = systemd_dir("CACHE_DIRECTORY")
    return found if found is not None else Path.home() / ".cache" / APP
