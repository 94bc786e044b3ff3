"""`edgeportrait process` run as the real command line in a subprocess."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeportrait", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FP32 model (always shipped) so the test does not depend on which IRs are built."""
    p = tmp_path_factory.mktemp("cfg") / "fp32.yaml"
    p.write_text("model:\n  precision: fp32\n  device: CPU\ncapture:\n  jpeg_quality: 95\n")
    return p


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert a minimal EXIF APP1 segment holding only the orientation tag (as cameras write it)."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + app1 + jpeg[2:]


def test_folder_with_a_corrupt_file_writes_the_others_and_exits_2(tmp_path: Path, config: Path) -> None:
    """Good photos become OUT_DIR/<stem>.jpg at their own size; the corrupt one is one stderr line; exit 2."""
    src = tmp_path / "in"
    src.mkdir()
    astronaut = cv2.imread(str(DATA / "astronaut.png"))
    cv2.imwrite(str(src / "astronaut.png"), astronaut)
    wide = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (700, 420))
    cv2.imwrite(str(src / "hopper.jpg"), wide)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    # EXIF says "rotate 90° clockwise to view": the portrait must come out upright (swapped sides)
    ok, enc = cv2.imencode(".jpg", cv2.resize(astronaut, (320, 240)))
    assert ok
    (src / "rotated.jpg").write_bytes(_with_exif_orientation(enc.tobytes(), 6))
    out = tmp_path / "out"

    r = _run("process", src, "-o", out, "-c", config, "--no-progress")

    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    error_lines = [ln for ln in r.stderr.splitlines() if "broken.jpg" in ln]
    assert len(error_lines) == 1 and error_lines[0].startswith("edgeportrait: ")
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.jpg", "hopper.jpg", "rotated.jpg"]  # no temp files
    a = cv2.imread(str(out / "astronaut.jpg"))
    assert a.shape == astronaut.shape
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "astronaut.jpg").stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0600
    assert cv2.imread(str(out / "hopper.jpg")).shape == wide.shape
    assert cv2.imread(str(out / "rotated.jpg")).shape == (320, 240, 3)
    # it is a portrait: the face (centre top) is kept, the top-right background is changed
    assert np.abs(a[60:200, 180:330].astype(int) - astronaut[60:200, 180:330]).mean() < 4
    assert np.abs(a[0:80, 430:512].astype(int) - astronaut[0:80, 430:512]).mean() > 4


def test_mode_and_blur_flags_override_the_config(tmp_path: Path, config: Path) -> None:
    """--mode color paints the background in portrait.color; --blur 0 leaves a blur-mode photo as it was."""
    src = tmp_path / "a.png"
    photo = cv2.imread(str(DATA / "astronaut.png"))
    cv2.imwrite(str(src), photo)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config.read_text() + "portrait:\n  color: [255, 0, 0]\n")  # RGB red
    r = _run("process", src, "-o", tmp_path / "o1", "-c", cfg, "--mode", "color", "--jobs", "1")
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "o1" / "a.jpg"))
    corner = out[0:40, 470:512].reshape(-1, 3).mean(axis=0)  # background: pure red in BGR
    assert corner[2] > 240 and corner[0] < 15 and corner[1] < 15
    r = _run("process", src, "-o", tmp_path / "o2", "-c", config, "--blur", "0")
    assert r.returncode == 0, r.stderr
    same = cv2.imread(str(tmp_path / "o2" / "a.jpg"))
    assert np.abs(same.astype(int) - photo.astype(int)).mean() < 2  # only JPEG rounding


def test_user_mistakes_are_one_line_each(tmp_path: Path, config: Path) -> None:
    """A bad flag is exit 2 and a bad config exit 78, each a clear line and no traceback."""
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), np.zeros((64, 64, 3), np.uint8))
    r = _run("process", src, "-o", tmp_path / "o", "-c", config, "--blur", "150")
    assert r.returncode == 2 and "--blur" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("portrait:\n  blur: 50\n  softnes: 0.2\n")
    r = _run("process", src, "-o", tmp_path / "o", "-c", bad)
    assert r.returncode == 78 and "portrait.softnes" in r.stderr and ":3:" in r.stderr
    r = _run("process", src, "-o", tmp_path / "o", "-c", config, "--mode", "image")
    assert r.returncode == 78 and "portrait.image" in r.stderr and "Traceback" not in r.stderr
    r = _run("process", tmp_path / "nothing-here.jpg", "-o", tmp_path / "o", "-c", config)
    assert r.returncode == 2 and "nothing-here.jpg" in r.stderr and "no such file" in r.stderr


def test_an_input_is_never_overwritten(tmp_path: Path, config: Path) -> None:
    """OUT_DIR the same folder as a JPEG input: that input is refused (exit 2) and left as it was."""
    src = tmp_path / "photo.jpg"
    cv2.imwrite(str(src), cv2.imread(str(DATA / "astronaut.png")))
    before = src.read_bytes()
    r = _run("process", src, "-o", tmp_path, "-c", config)
    assert r.returncode == 2 and "overwrite" in r.stderr
    assert src.read_bytes() == before


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_is_a_live_line_on_a_terminal_and_periodic_lines_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """TTY: one line rewritten in place, errors on lines of their own; pipe: plain lines; --no-progress: none."""
    from edgeportrait import process

    tty = _Stream(tty=True)
    p = process.Progress(3, tty, enabled=True)
    p.step()
    p.message("edgeportrait: x.jpg: not a readable image")
    p.step(failed=True)
    p.step()
    p.finish()
    text = tty.getvalue()
    assert "\r\x1b[K[3/3] 100%" in text and "1 failed" in text and text.endswith("\n")
    assert "\r\x1b[Kedgeportrait: x.jpg: not a readable image\n" in text

    monkeypatch.setattr(process, "PLAIN_PROGRESS_EVERY_S", 0.0)
    pipe = _Stream(tty=False)
    p = process.Progress(3, pipe, enabled=True)
    p.step()
    p.step()
    p.step()  # the last one is left to the summary line
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("edgeportrait: [1/3] 33% ") and lines[1].startswith("edgeportrait: [2/3] 66% ")
    assert "\r" not in pipe.getvalue() and "\x1b" not in pipe.getvalue()

    quiet = _Stream(tty=True)
    p = process.Progress(2, quiet, enabled=False)
    p.step()
    p.step()
    p.finish()
    assert quiet.getvalue() == ""


def test_symlink_loops_and_broken_links_are_one_line_each_and_the_rest_is_written(
    tmp_path: Path, config: Path
) -> None:
    """Loops and dangling links, given directly or found in a folder: one line each naming the file,
    the good inputs still written, exit 2, no traceback."""
    small = cv2.resize(cv2.imread(str(DATA / "grace_hopper.jpg")), (96, 64))
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "good1.jpg"), small)
    (folder / "self.jpg").symlink_to("self.jpg")  # a loop on itself
    (folder / "ping.png").symlink_to("pong.png")  # a loop of two
    (folder / "pong.png").symlink_to("ping.png")
    (folder / "gone.jpg").symlink_to("nowhere.jpg")  # dangling
    loose = tmp_path / "loose"
    loose.mkdir()
    cv2.imwrite(str(loose / "good2.png"), small)
    (loose / "loop.jpg").symlink_to(loose / "loop.jpg")
    out = tmp_path / "out"

    r = _run("process", loose / "loop.jpg", folder, loose / "good2.png", "-o", out, "-c", config, "--no-progress")

    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "RuntimeError" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("edgeportrait: ")]
    for name, why in (("loop.jpg", "symbolic link loop"), ("self.jpg", "symbolic link loop"),
                      ("ping.png", "symbolic link loop"), ("pong.png", "symbolic link loop"),
                      ("gone.jpg", "broken symbolic link")):
        lines = [ln for ln in errors if f"/{name}:" in ln]
        assert len(lines) == 1 and why in lines[0], (name, r.stderr)
    assert sorted(p.name for p in out.iterdir()) == ["good1.jpg", "good2.jpg"]


def test_a_file_name_with_a_newline_or_escape_is_reported_on_one_escaped_line(tmp_path: Path, config: Path) -> None:
    """A hostile file name cannot forge a second error line or send escape sequences to the terminal."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad\nedgeportrait: FORGED\x1b[31m.jpg").write_bytes(b"not an image")
    r = _run("process", folder, "-o", tmp_path / "out", "-c", config, "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "\x1b" not in r.stderr
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith("edgeportrait: FORGED")], r.stderr
    assert "bad\\nedgeportrait: FORGED\\x1b[31m.jpg" in r.stderr
