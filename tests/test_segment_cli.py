"""`edgeportrait segment`: mask files, sizes, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from segment_helpers import MODELS, golden, iou

# compiled-model cache of the CLI runs: not the user's ~/.cache
CACHE = Path(tempfile.gettempdir()) / "edgeportrait-test-ovcache"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CACHE_DIRECTORY": str(CACHE)}
    return subprocess.run(
        [sys.executable, "-m", "edgeportrait", *args], capture_output=True, text=True, timeout=300, env=env
    )


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not log records (INFO/DEBUG lines say what happened, not what failed)."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("INFO ", "DEBUG "))]


def test_masks_are_written_as_8bit_png_at_input_size(tmp_path: Path) -> None:
    """Each input gives OUT/<stem>.png: grayscale uint8, the input's size, 255 = person."""
    src = tmp_path / "in"
    src.mkdir()
    for case in ("grace_hopper", "grace_hopper_flip_wide"):
        cv2.imwrite(str(src / f"{case}.png"), golden.load_case(case))
    out = tmp_path / "out"
    r = run_cli("segment", str(src), "-o", str(out), "--precision", "fp32", "--device", "CPU")
    assert r.returncode == 0, r.stderr
    assert error_lines(r.stderr) == []
    for case in ("grace_hopper", "grace_hopper_flip_wide"):
        m = cv2.imread(str(out / f"{case}.png"), cv2.IMREAD_UNCHANGED)
        assert m is not None and m.dtype == np.uint8 and m.ndim == 2
        assert m.shape == golden.load_case(case).shape[:2]
        assert iou(m.astype(np.float32) / 255.0, golden.read_golden("general", case)) > 0.99
        assert m.max() == 255 and m.min() == 0
    assert sorted(p.name for p in out.iterdir()) == ["grace_hopper.png", "grace_hopper_flip_wide.png"]


def test_unreadable_inputs_are_one_line_each_and_exit_2(tmp_path: Path) -> None:
    """A missing file and a non-image are reported (one line each, naming the file); the good one is written."""
    good = tmp_path / "person.jpg"
    cv2.imwrite(str(good), golden.load_case("astronaut"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    r = run_cli("segment", str(missing), str(bad), str(good), "-o", str(out), "--model", "landscape")
    assert r.returncode == 2
    errs = error_lines(r.stderr)
    assert len(errs) == 2, r.stderr
    assert "missing.png" in errs[0] and "no such file" in errs[0]
    assert "bad.jpg" in errs[1]
    assert "Traceback" not in r.stderr
    assert [p.name for p in out.iterdir()] == ["person.png"]


def test_same_stem_inputs_do_not_overwrite_each_other(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.png"), golden.load_case("camera"))
    out = tmp_path / "out"
    r = run_cli("segment", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "-o", str(out),
                "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x.png"]


def test_wrong_flags_and_devices_are_one_line_exit_2(tmp_path: Path) -> None:
    for argv in (
        ["segment", "x.png", "-o", str(tmp_path), "--model", "portrait"],
        ["segment", "x.png", "-o", str(tmp_path), "--device", "TPU"],
        ["segment", "-o", str(tmp_path)],
    ):
        r = run_cli(*argv)
        assert r.returncode == 2, (argv, r.stderr)
        assert len(error_lines(r.stderr)) == 1, r.stderr
        assert "Traceback" not in r.stderr


def test_missing_models_are_one_line_exit_1(tmp_path: Path) -> None:
    img = tmp_path / "p.png"
    cv2.imwrite(str(img), golden.load_case("camera"))
    r = run_cli("segment", str(img), "-o", str(tmp_path / "out"), "--models-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 1
    errs = error_lines(r.stderr)
    assert len(errs) == 1 and "model file not found" in errs[0], r.stderr


def test_shipped_models_are_all_there() -> None:
    """The runtime needs every variant in models/ (no build at install time)."""
    for name in ("general", "landscape"):
        for precision in ("fp32", "int8"):
            assert (MODELS / f"selfie_{name}_{precision}.xml").is_file()
            assert (MODELS / f"selfie_{name}_{precision}.bin").stat().st_size > 100_000


def test_model_build_with_a_missing_wheel_is_one_line_exit_1(tmp_path: Path) -> None:
    """`model build --wheel FILE` naming no file fails before anything is written (without the
    build extra installed it is the same: one line saying what to install)."""
    out = tmp_path / "models"
    r = run_cli("model", "build", "--wheel", str(tmp_path / "nope.whl"), "--out", str(out), "--no-progress")
    assert r.returncode == 1, r.stderr  # the contract: model build exits 0 or 1
    errs = [ln for ln in error_lines(r.stderr) if not ln.startswith("[")]  # "[1/6] ..." stage lines
    assert len(errs) == 1, r.stderr
    assert "nope.whl" in errs[0] or "build extra" in errs[0]
    assert not out.exists()
