"""systemd's directory variables: the first of a ':'-separated list, else the home defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeportrait import paths
from edgeportrait.results import default_state_dir
from edgeportrait.segment.segmenter import default_cache_dir


def test_the_first_of_several_systemd_directories_is_ours(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path}/cache")
    assert paths.state_dir() == default_state_dir() == tmp_path / "state"
    assert default_cache_dir() == tmp_path / "cache" / "ov"


def test_without_systemd_the_xdg_and_home_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("STATE_DIRECTORY", "CACHE_DIRECTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CACHE_DIRECTORY", "")  # set but empty is unset
    assert default_state_dir() == tmp_path / ".local" / "state" / "edgeportrait"
    assert default_cache_dir() == tmp_path / ".cache" / "edgeportrait" / "ov"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert paths.state_dir() == tmp_path / "xdg" / "edgeportrait"
