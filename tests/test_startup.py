"""Start-up: each command imports only what it needs (the speed itself is measured by benchmarks, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("openvino", "openvino.tools.ovc", "cv2", "numpy", "paho", "importlib.metadata")

# runs the command line in a fresh interpreter and reports its exit code and which of HEAVY it imported
PROBE = """
import json, sys
from edgeportrait.cli import main
heavy = json.loads(sys.argv[2])
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
"""


def _probe(*argv: str) -> tuple[int, set[str]]:
    p = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    report = json.loads(p.stdout.strip().splitlines()[-1])
    return report["code"], set(report["imported"])


def test_config_check_imports_neither_openvino_nor_opencv_nor_mqtt() -> None:
    code, imported = _probe("config", "check", "-c", str(ROOT / "configs" / "demo.yaml"))
    assert code == 0
    assert not imported & {"openvino", "cv2", "numpy", "paho"}, imported


def test_version_needs_nothing_heavy_but_the_package_metadata() -> None:
    code, imported = _probe("--version")
    assert code == 0
    assert imported <= {"importlib.metadata"}, imported


def test_process_imports_no_mqtt_and_no_model_converter(tmp_path: Path) -> None:
    """`process` loads OpenVINO's runtime but not its converter (telemetry, urllib, ssl), nor paho."""
    photo = tmp_path / "one.jpg"
    cv2.imwrite(str(photo), np.full((64, 96, 3), 128, np.uint8))
    cfg = tmp_path / "fp32.yaml"
    cfg.write_text("model:\n  precision: fp32\n  device: CPU\n")
    code, imported = _probe("process", str(photo), "-o", str(tmp_path / "out"), "-c", str(cfg), "--no-progress")
    assert code == 0
    assert (tmp_path / "out" / "one.jpg").is_file()
    assert "openvino" in imported
    assert not imported & {"paho", "openvino.tools.ovc"}, imported


def test_process_ends_quickly_but_says_everything_first(tmp_path: Path) -> None:
    """The batch commands skip the interpreter's teardown; their last lines and exit code still arrive."""
    cv2.imwrite(str(tmp_path / "a.png"), np.full((48, 64, 3), 90, np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    cfg = tmp_path / "fp32.yaml"
    cfg.write_text("model:\n  precision: fp32\n  device: CPU\n")
    argv = ["process", str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "-o", str(tmp_path / "out"), "-c", str(cfg)]
    p = subprocess.run([sys.executable, "-m", "edgeportrait", *argv], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    assert "b.jpg" in p.stderr and "1 portrait(s) written" in p.stderr.splitlines()[-1], p.stderr
    assert (tmp_path / "out" / "a.jpg").is_file()


def test_the_converter_can_still_be_imported_after_the_runtime() -> None:
    """Skipping openvino.tools.ovc at import leaves no trace: an explicit import of it still works."""
    code = (
        "import sys, edgeportrait.segment; assert 'openvino.tools.ovc' not in sys.modules; "
        "from openvino.tools.ovc import convert_model; print('ok')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.strip() == "ok", p.stderr
