"""A full disk fails the capture with a published error, leaves no partial file, and the daemon keeps serving.

The output directory is a real tmpfs of a few hundred kilobytes (mounting needs
root; the test is skipped elsewhere), so the write fails with ENOSPC exactly
as it would on a full SD card.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from conftest import Broker
from test_daemon import end_daemon, start_daemon


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "out"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_an_error_and_the_daemon_serves_once_there_is_room(
    mosquitto: Broker, tmp_path: Path, tiny_disk: Path
) -> None:
    d = start_daemon(
        tmp_path / "daemon",
        mosquitto,
        "full-disk",
        camera={"width": 1280, "height": 720},
        capture={"output_dir": str(tiny_disk), "jpeg_quality": 95},
    )
    try:
        mark = d.watch.mark()
        d.cmd("capture", {"id": "no-room"})
        err = d.error(lambda e: e["id"] == "no-room", start=mark, timeout=60)
        assert err["error"] == "write_failed"
        assert "space" in err["detail"].lower()
        assert list(tiny_disk.iterdir()) == [], "a partial file was left on the full disk"

        # room again: the same daemon serves the next capture, no restart
        subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_disk)], check=True)
        d.cmd("capture", {"id": "room-again"})
        r = d.result("room-again", start=mark, timeout=60)
        saved = Path(r["path"])
        assert saved.parent == tiny_disk
        assert cv2.imread(str(saved)).shape == (720, 1280, 3)
        assert d.proc.poll() is None
    finally:
        end_daemon(d)
