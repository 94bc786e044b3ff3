"""Daemon-side config: errors name key path and YAML line, exit 78 from `config check` and `run`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import free_port

from edgeportrait.config import load_config
from edgeportrait.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "configs").glob("*.yaml"))


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeportrait", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_the_three_example_configs_exist() -> None:
    """configs/ ships the Pi booth, the Intel NPU box and the headless demo."""
    assert {p.name for p in EXAMPLES} >= {"pi-booth.yaml", "intel-npu.yaml", "demo.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_are_valid(path: Path) -> None:
    """Every documented example passes `edgeportrait config check`."""
    r = _cli("config", "check", "-c", str(path))
    assert r.returncode == 0, r.stderr


def test_demo_config_needs_no_camera_and_captures_locally() -> None:
    """The demo's camera is a folder in the repository and its portraits go to ./out on a timer."""
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    assert (ROOT / cfg.camera.source).is_dir()
    assert cfg.capture.interval_s > 0 and str(cfg.capture.output_dir) in ("out", "./out")
    assert cfg.mqtt.enabled


BAD = """\
device_id: booth-1
mqtt:
  port: 99999
  topic_prefix: "a/#"
capture:
  interval_s: -1
  colour: red
health:
  interval_s: 0
"""


def test_daemon_sections_report_every_error_with_line(tmp_path: Path) -> None:
    """Out-of-range, bad pattern and unknown keys in mqtt/capture/health each name their line."""
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    lines = e.value.lines
    assert any(line.startswith(f"{p}:3: mqtt.port:") for line in lines), lines
    assert any(line.startswith(f"{p}:4: mqtt.topic_prefix:") for line in lines), lines
    assert any(line.startswith(f"{p}:6: capture.interval_s:") for line in lines), lines
    assert any(line.startswith(f"{p}:7: capture.colour: unknown key") for line in lines), lines
    assert any(line.startswith(f"{p}:9: health.interval_s:") for line in lines), lines


@pytest.mark.parametrize("command", [["config", "check"], ["run"]])
def test_bad_config_exits_78_without_traceback(tmp_path: Path, command: list[str]) -> None:
    """`config check` and `run` on a broken file: line-numbered errors on stderr, exit 78, no traceback."""
    p = tmp_path / "bad.yaml"
    p.write_text(BAD)
    r = _cli(*command, "-c", str(p))
    assert r.returncode == 78, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{p}:3: mqtt.port:" in r.stderr


def test_run_with_missing_config_file_exits_78(tmp_path: Path) -> None:
    """A config path that does not exist is one line and exit 78 (systemd must not restart-loop)."""
    r = _cli("run", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 78
    assert r.stderr.strip().endswith("no such file") and "Traceback" not in r.stderr


def test_run_with_missing_model_is_fatal_exit_1(tmp_path: Path) -> None:
    """A model directory without the IR files: one clear line, exit 1 (not a config error, not a traceback)."""
    p = tmp_path / "cfg.yaml"
    p.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"model: {{dir: {tmp_path / 'empty'}}}\n"
        f"mqtt: {{enabled: false}}\n"
        f"capture: {{output_dir: {tmp_path / 'out'}}}\n"
        f"camera: {{source: {ROOT / 'tests' / 'data'}}}\n"
    )
    r = _cli("run", "-c", str(p))
    assert r.returncode == 1, r.stderr
    assert "model file not found" in r.stderr and "Traceback" not in r.stderr


def test_run_with_unwritable_output_dir_is_fatal_exit_1(tmp_path: Path) -> None:
    """An output_dir that cannot be created (a file is in the way) is one clear line, exit 1."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = tmp_path / "cfg.yaml"
    p.write_text(
        f"state_dir: {tmp_path / 'state'}\nmqtt: {{enabled: false}}\ncapture: {{output_dir: {blocker / 'out'}}}\n"
    )
    r = _cli("run", "-c", str(p))
    assert r.returncode == 1, r.stderr
    assert "cannot prepare" in r.stderr and "Traceback" not in r.stderr


def test_demo_runs_without_broker_and_captures_to_out(tmp_path: Path) -> None:
    """configs/demo.yaml with no broker listening: portraits still appear in ./out; SIGTERM exits 0."""
    shutil.copytree(ROOT / "tests" / "data", tmp_path / "tests" / "data")
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    cfg["mqtt"]["port"] = free_port()  # nothing listens there
    cfg["http"]["port"] = free_port()
    cfg["capture"]["interval_s"] = 1
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeportrait", "run", "-c", "demo.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while len(list((tmp_path / "out").glob("*.jpg"))) < 2:
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "no portraits in ./out"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
        assert proc.returncode == 0, out[-2000:]
        assert "unreachable" in out or "refused" in out  # it said why MQTT is not there, and carried on
        assert "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
