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


def read_secret(key: str, file: Path) -> bytes:
    """The first 4 KiB of a secret's file; a bare name is looked up in $CREDENTIALS_DIRECTORY.

    systemd's ``LoadCredential=`` puts a secret there, so a config that names the
    file by its bare name and the unit stay in step. ``key`` (``mqtt.password_file``)
    names the setting in the ``FatalError`` when the file cannot be read.
    """
    from edgeportrait.errors import FatalError

    path = Path(file)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and not path.is_absolute() and len(path.parts) == 1:
        path = Path(creds) / path
    try:
        return path.read_bytes()[:4096]
    except OSError as e:
        raise FatalError(f"{key}: cannot read {path}: {e.strerror or e}") from None
