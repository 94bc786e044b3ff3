"""`edgeportrait bench`: the table and the JSON carry every stage, the naive ratio and the blur error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeportrait.bench import generated_frame, parse_sizes
from edgeportrait.errors import UserError

DATA = Path(__file__).parent / "data"


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeportrait", "bench", *map(str, argv)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "fp32.yaml"
    p.write_text("model:\n  precision: fp32\n  device: CPU\n")
    return p


def test_json_has_every_stage_per_size_with_median_and_p95(config: Path) -> None:
    """--json: per size, decode/segment/compose/encode/chain/naive with median ≤ p95, and the naive ratio."""
    r = _run("--json", "--runs", "3", "--sizes", "320x240,480p", "-c", config)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert list(report["sizes"]) == ["320x240", "480p"]
    assert report["sizes"]["480p"]["width"] == 854 and report["sizes"]["480p"]["height"] == 480
    for size in report["sizes"].values():
        stages = size["stages"]
        assert set(stages) == {
            "decode", "segment", "segment_fp32", "segment_int8", "compose", "encode", "chain", "naive_compose"
        }
        for s in stages.values():
            assert 0 < s["median_ms"] <= s["p95_ms"]
        expected = stages["segment_int8"]["median_ms"] / stages["segment_fp32"]["median_ms"]
        assert size["int8_over_fp32"] == pytest.approx(expected, rel=0.01, abs=0.01)
        expected = stages["naive_compose"]["median_ms"] / stages["compose"]["median_ms"]
        assert size["naive_over_compose"] == pytest.approx(expected, rel=0.01, abs=0.01)
        assert size["blur_vs_full_resolution"]["psnr_db"] > 40


def test_table_lists_the_stages_and_the_ratio(config: Path) -> None:
    """Without --json: a table with one row per stage and a column pair per size, then the ratio line."""
    r = _run("--runs", "2", "--sizes", "320x240", "-c", config, "--input", DATA / "astronaut.png")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "input" in lines[0] and "astronaut.png" in lines[0]
    for stage in ("decode", "segment", "segment_fp32", "segment_int8", "compose", "encode", "chain", "naive_compose"):
        row = next(ln for ln in lines if ln.startswith(stage + " "))
        assert len(row.split()) == 3  # name, median, p95
    assert any(ln.startswith("naive/compose: 320x240 ") for ln in lines)
    assert any(ln.startswith("INT8/FP32 segment time: 320x240 ") for ln in lines)


def test_auto_precision_is_reported_with_its_reason(tmp_path: Path) -> None:
    """With model.precision auto, the report names the precision that ran and why, beside both precisions' times."""
    from edgeportrait.segment.precision import choose

    cfg = tmp_path / "auto.yaml"
    cfg.write_text("model:\n  precision: auto\n  device: CPU\n")
    r = _run("--json", "--runs", "2", "--sizes", "320x240", "-c", cfg)
    assert r.returncode == 0, r.stderr
    model = json.loads(r.stdout)["model"]
    assert (model["precision"], model["precision_reason"]) == choose("auto", "CPU", ["CPU"])


def test_bad_sizes_and_runs_are_one_line_exit_2(config: Path) -> None:
    for argv in (["--sizes", "huge"], ["--runs", "0"], ["--sizes", "10x10"]):
        r = _run(*argv, "-c", config)
        assert r.returncode == 2, argv
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_parse_sizes_names_and_wxh() -> None:
    assert parse_sizes("720p, 1080p,4K,640x480") == [
        ("720p", 1280, 720),
        ("1080p", 1920, 1080),
        ("4k", 3840, 2160),
        ("640x480", 640, 480),
    ]
    with pytest.raises(UserError, match="--sizes"):
        parse_sizes("1080i")


def test_generated_frame_has_a_person_shaped_mask() -> None:
    """The generated figure covers a plausible part of the frame and differs from its background."""
    frame, mask = generated_frame(640, 360)
    assert frame.shape == (360, 640, 3) and mask.shape == (360, 640)
    share = float((mask > 0).mean())
    assert 0.15 < share < 0.6
    inside = frame[mask > 0].mean(axis=0)
    outside = frame[mask == 0].mean(axis=0)
    assert np.abs(inside - outside).max() > 30
