"""Start-up: each command imports only what it needs (the speed itself is measured by benchmarks, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
# the offline model tooling: only `model build` may import it
BUILD = "edgeportrait_build"
HEAVY = ("openvino", "openvino.tools.ovc", "cv2", "numpy", "paho", "pydantic", "importlib.metadata", "yaml", BUILD)

# runs the command line in a fresh interpreter and reports its exit code and which of HEAVY it imported
PROBE = """
import json, os, sys
from edgeportrait.cli import main
heavy = json.loads(sys.argv[2])
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules],
                  "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


# `run` does not end by itself: a thread sends SIGTERM (the daemon's own stop) once the first
# portrait is in OUT_DIR, i.e. after a frame went through capture, segmentation and compositing
PROBE_RUN = """
import json, os, signal, sys, threading, time
from pathlib import Path
out = Path(sys.argv[3])

def stop_after_first_portrait():
    deadline = time.monotonic() + 240
    while not any(out.glob("*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=stop_after_first_portrait, daemon=True).start()
""" + PROBE


def _probe(*argv: str, script: str = PROBE, extra: tuple[str, ...] = ()) -> tuple[int, set[str]]:
    code, imported, _ = _probe_env(*argv, script=script, extra=extra)
    return code, imported


def _probe_env(*argv: str, script: str = PROBE, extra: tuple[str, ...] = ()) -> tuple[int, set[str], str | None]:
    """Like _probe, plus OPENBLAS_NUM_THREADS as the command left it (the probe's own env has none)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    p = subprocess.run(
        [sys.executable, "-c", script, json.dumps(argv), json.dumps(HEAVY), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert p.stdout.strip(), p.stderr[-2000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    return report["code"], set(report["imported"]), report["blas_threads"]


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
    code, imported, blas = _probe_env(
        "process", str(photo), "-o", str(tmp_path / "out"), "-c", str(cfg), "--no-progress"
    )
    assert code == 0
    assert (tmp_path / "out" / "one.jpg").is_file()
    assert "openvino" in imported
    assert not imported & {"paho", "openvino.tools.ovc", BUILD}, imported
    # numpy's OpenBLAS threads spin at start-up and nothing of ours multiplies matrices with numpy
    assert blas == "1"


def test_model_build_keeps_numpys_blas_threads(tmp_path: Path) -> None:
    code, _, blas = _probe_env("model", "build", "--out", str(tmp_path / "m"), "--wheel", str(tmp_path / "none.whl"))
    assert code == 1
    assert blas is None


def test_segment_imports_neither_the_build_tools_nor_mqtt(tmp_path: Path) -> None:
    photo = tmp_path / "one.png"
    cv2.imwrite(str(photo), np.full((64, 96, 3), 128, np.uint8))
    argv = ("segment", str(photo), "-o", str(tmp_path / "out"), "--precision", "fp32", "--device", "CPU")
    code, imported = _probe(*argv)
    assert code == 0
    assert (tmp_path / "out" / "one.png").is_file()
    assert "openvino" in imported
    assert not imported & {"paho", "openvino.tools.ovc", BUILD}, imported


def test_run_does_not_import_the_build_tools(tmp_path: Path) -> None:
    """The daemon, from start through its first portrait to SIGTERM, never loads the model tooling."""
    from conftest import free_port

    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    cfg["camera"]["source"] = str(ROOT / "tests" / "data")
    cfg["state_dir"] = str(tmp_path / "state")
    cfg["capture"]["output_dir"] = str(tmp_path / "out")
    cfg["capture"]["interval_s"] = 1
    cfg["mqtt"]["port"] = free_port()  # nothing listens there: the daemon carries on without a broker
    cfg["http"]["port"] = free_port()
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    code, imported = _probe("run", "-c", str(tmp_path / "run.yaml"), script=PROBE_RUN, extra=(str(tmp_path / "out"),))
    assert code == 0
    assert any((tmp_path / "out").glob("*.jpg"))
    assert "openvino" in imported
    assert BUILD not in imported, imported


def test_model_build_still_reaches_the_build_tools(tmp_path: Path) -> None:
    """`model build` is the one command that loads edgeportrait_build; a missing wheel is one line, exit 1."""
    code, imported = _probe("model", "build", "--out", str(tmp_path / "m"), "--wheel", str(tmp_path / "none.whl"))
    assert code == 1
    assert BUILD in imported


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


def test_the_default_model_without_pydantic_is_modelconfigs_default() -> None:
    """`process` without -c compiles DEFAULT_MODEL before the config is imported: the same values."""
    from edgeportrait.config import ModelConfig
    from edgeportrait.segment.adapter import DEFAULT_MODEL

    defaults = ModelConfig().model_dump()
    assert set(defaults) == set(DEFAULT_MODEL.__dataclass_fields__)
    for key, value in defaults.items():
        got = getattr(DEFAULT_MODEL, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_the_segmenter_imports_no_config() -> None:
    """The model load starts before pydantic is imported (see process.main): segmentation must not need it."""
    code = "import sys, edgeportrait.segment; print(sorted(m for m in ('pydantic', 'yaml') if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr[-2000:]


def test_process_without_a_config_loads_the_default_model(tmp_path: Path) -> None:
    """Without -c the model comes from DEFAULT_MODEL; the portrait is the one -c with the defaults gives."""
    photo = tmp_path / "one.png"
    cv2.imwrite(str(photo), cv2.resize(cv2.imread(str(ROOT / "tests" / "data" / "grace_hopper.jpg")), (192, 108)))
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    outs = []
    for name, extra in (("plain", ()), ("config", ("-c", str(empty)))):
        out = tmp_path / name
        code, imported = _probe("process", str(photo), "-o", str(out), "--no-progress", *extra)
        assert code == 0
        assert "pydantic" in imported  # the portrait settings are still a validated config
        assert ("yaml" in imported) == bool(extra)  # a YAML parser only for a YAML file
        outs.append((out / "one.jpg").read_bytes())
    assert outs[0] == outs[1]
