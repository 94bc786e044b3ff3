"""The real daemon (a subprocess) against a real mosquitto, used as a client would.

One daemon serves the module (a folder of one photo as the camera, small
frames); the tests that end a daemon (SIGKILL, SIGTERM) start their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import Broker
from mqtt_watch import Msg, Watcher

from edgeportrait.messages import ErrorMessage, HealthMessage, ResultMessage

DATA = Path(__file__).parent / "data"
MODEL_PRECISION = "int8"


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    base: str
    watch: Watcher
    cfg_path: Path
    root: Path
    log: Path
    broker: Broker

    def watcher(self, topics: list[str]) -> Watcher:
        """Another client on the daemon's broker (e.g. a late subscriber, to see what is retained)."""
        return Watcher(self.broker.host, self.broker.port, topics)

    def cmd(self, suffix: str, payload: bytes | str | dict, **kw: object) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.watch.publish(f"{self.base}/{suffix}", payload, **kw)  # type: ignore[arg-type]

    def wait(self, suffix: str, pred=lambda m: True, timeout: float = 30.0, start: int = 0) -> Msg:  # noqa: ANN001
        topic = f"{self.base}/{suffix}"
        try:
            return self.watch.wait_for(lambda m: m.topic == topic and pred(m), timeout=timeout, start=start)
        except AssertionError:
            raise AssertionError(f"nothing on {topic}; daemon log tail:\n{self.log_tail()}") from None

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"

    def result(self, cid: str, timeout: float = 60.0, start: int = 0) -> dict:
        m = self.wait("result", lambda m: json.loads(m.payload).get("id") == cid, timeout, start)
        # the payload is exactly the ResultMessage the docs describe (no field missing or extra)
        return ResultMessage.model_validate_json(m.payload).model_dump()

    def error(self, pred, timeout: float = 30.0, start: int = 0) -> dict:  # noqa: ANN001
        m = self.wait("error", lambda m: pred(json.loads(m.payload)), timeout, start)
        return ErrorMessage.model_validate_json(m.payload).model_dump()

    def settings_state(self) -> dict:
        """The retained B/settings/state, as a late subscriber sees it."""
        late = self.watcher([f"{self.base}/settings/state"])
        try:
            return json.loads(late.wait_for(lambda m: m.retain).payload)
        finally:
            late.close()

    def restore_settings(self, state: dict) -> None:
        """Back to ``state`` (the runtime settings at start), waiting until the daemon says so."""
        if self.settings_state() == state:
            return
        mark = self.watch.mark()
        self.cmd("settings/set", state)
        self.wait("settings/state", lambda m: json.loads(m.payload) == state, 120, mark)

    def image_for(self, result: dict, start: int = 0) -> bytes:
        """The B/result/image payload whose sha256 is the result's."""
        m = self.wait("result/image", lambda m: hashlib.sha256(m.payload).hexdigest() == result["sha256"],
                      30, start)
        return m.payload


def write_config(root: Path, broker: Broker, device: str, **overrides: object) -> Path:
    photos = root / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "grace_hopper.jpg", photos / "grace_hopper.jpg")
    cfg: dict = {
        "device_id": device,
        "state_dir": str(root / "state"),
        "camera": {"source": str(photos), "width": 640, "height": 360, "fps": 10},
        "model": {"name": "landscape", "precision": MODEL_PRECISION, "device": "CPU",
                  "cache_dir": str(root / "cache")},
        "pipeline": {"max_fps": 5},
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_min_s": 1, "reconnect_max_s": 2,
                 "discovery": {"enabled": True, "prefix": "ha-test"}},
        "capture": {"output_dir": str(root / "out"), "queue_limit": 2},
        "health": {"interval_s": 1},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(root: Path, broker: Broker, device: str, **overrides: object) -> Daemon:
    cfg = write_config(root, broker, device, **overrides)
    base = f"edgeportrait/{device}"
    watch = Watcher(broker.host, broker.port, [f"{base}/#"])
    log = root / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgeportrait", "run", "-c", str(cfg)],
                                stdout=out, stderr=subprocess.STDOUT)
    d = Daemon(proc, base, watch, cfg, root, log, broker)
    deadline = time.monotonic() + 90
    while True:
        try:
            d.watch.wait_for(lambda m: m.topic == f"{base}/status" and m.payload == b"online", timeout=1)
            return d
        except AssertionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                end_daemon(d)
                raise AssertionError(f"daemon did not come online (exit {proc.poll()}):\n{d.log_tail()}") from None


def end_daemon(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait(10)
    d.watch.close()


@pytest.fixture(scope="module")
def shared_daemon(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, dict]]:
    d = start_daemon(tmp_path_factory.mktemp("daemon"), mosquitto, "it-main")
    yield d, d.settings_state()
    end_daemon(d)


@pytest.fixture
def daemon(shared_daemon: tuple[Daemon, dict]) -> Iterator[Daemon]:
    """The module's daemon, its runtime settings put back after each test (no test sees another's)."""
    d, initial = shared_daemon
    yield d
    if d.proc.poll() is None:
        d.restore_settings(initial)


def _decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a JPEG"
    return img


def test_capture_with_id_gives_matching_result_and_image(daemon: Daemon) -> None:
    """B/capture {"id"} → B/result with that id and every contract field; B/result/image matches sha256 and size."""
    mark = daemon.watch.mark()
    daemon.cmd("capture", {"id": "cap-1"})
    r = daemon.result("cap-1", start=mark)
    assert set(r) == {"id", "seq", "ts", "trigger", "width", "height", "path", "bytes", "sha256",
                      "foreground_fraction", "timings_ms", "model", "precision", "precision_reason", "device"}
    assert r["trigger"] == "mqtt" and (r["width"], r["height"]) == (640, 360)
    assert (r["model"], r["precision"]) == ("landscape", MODEL_PRECISION) and r["device"]
    assert r["precision_reason"] == f"model.precision is {MODEL_PRECISION}"
    image = daemon.image_for(r, start=mark)
    assert len(image) == r["bytes"]
    assert _decode(image).shape == (360, 640, 3)
    saved = Path(r["path"])
    assert saved.parent == daemon.root / "out" and _decode(saved.read_bytes()).shape == (360, 640, 3)
    assert 0.05 < r["foreground_fraction"] < 0.95  # Grace Hopper is in the picture, not all of it
    assert r["ts"].endswith("Z")
    # the next capture (empty payload: id generated) has the next seq
    mark = daemon.watch.mark()
    daemon.cmd("capture", b"")
    nxt = json.loads(daemon.wait("result", start=mark, timeout=60).payload)
    assert nxt["seq"] == r["seq"] + 1 and nxt["id"] and nxt["id"] != "cap-1"


def test_response_topic_and_correlation_data_are_honoured(daemon: Daemon) -> None:
    """An MQTT 5 capture with a response topic gets its result there too, with the same correlation data."""
    reply = "test/replies/xyz"
    w = daemon.watcher([reply])
    try:
        daemon.cmd("capture", {"id": "rt-1"}, response_topic=reply, correlation_data=b"\x00corr")
        m = w.wait_for(lambda m: m.topic == reply, timeout=60)
        assert json.loads(m.payload)["id"] == "rt-1" and m.correlation_data == b"\x00corr"
    finally:
        w.close()


# The flag behind Grace Hopper: background in the 640×360 letterboxed frame (camera.fit contain)
FLAG = (slice(10, 120), slice(172, 245))


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_blur_change_through_settings_set_shows_in_next_capture(daemon: Daemon) -> None:
    """settings/set {"portrait": {"blur": …}} is echoed on settings/state and makes the next portrait blurrier."""
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"portrait": {"blur": 0}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["portrait"]["blur"] == 0, start=mark)
    daemon.cmd("capture", {"id": "sharp"})
    sharp = _decode(daemon.image_for(daemon.result("sharp", start=mark), start=mark))

    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"portrait": {"blur": 100}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["portrait"]["blur"] == 100, start=mark)
    daemon.cmd("capture", {"id": "blurred"})
    blurred = _decode(daemon.image_for(daemon.result("blurred", start=mark), start=mark))
    assert _sharpness(blurred[FLAG]) < 0.3 * _sharpness(sharp[FLAG])
    assert float(np.abs(blurred[FLAG].astype(int) - sharp[FLAG].astype(int)).mean()) > 5.0

    late = daemon.watcher([f"{daemon.base}/settings/state"])
    try:
        m = late.wait_for(lambda m: m.retain)
        assert json.loads(m.payload)["portrait"]["blur"] == 100
    finally:
        late.close()


def test_per_capture_settings_apply_to_that_capture_only(daemon: Daemon) -> None:
    """A capture's own "settings" change its portrait without changing settings/state."""
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"portrait": {"mode": "blur", "blur": 100}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["portrait"]["blur"] == 100, start=mark)
    daemon.cmd("capture", {"id": "gray-once", "settings": {"portrait": {"mode": "grayscale"}}})
    gray = _decode(daemon.image_for(daemon.result("gray-once", start=mark), start=mark))
    daemon.cmd("capture", {"id": "after-gray"})
    after = _decode(daemon.image_for(daemon.result("after-gray", start=mark), start=mark))
    # grayscale background: on the (red, white and blue) flag the channels agree
    flag = gray[FLAG].astype(int)
    assert np.abs(flag[..., 0] - flag[..., 2]).mean() < 3
    flag = after[FLAG].astype(int)
    assert np.abs(flag[..., 0] - flag[..., 2]).mean() > 10


@pytest.mark.parametrize(
    ("suffix", "payload", "code"),
    [
        ("capture", b"{broken", "bad_json"),
        ("capture", b"\xff\xfe\xfd", "bad_json"),
        ("capture", json.dumps({"id": "neg", "countdown_s": -5}), "bad_payload"),
        ("settings/set", json.dumps({"portrait": {"blur": 1000}}), "invalid_value"),
        ("settings/set", json.dumps({"portrait": {"nope": 1}}), "unknown_setting"),
        ("settings/set", json.dumps({"mqtt": {"host": "elsewhere"}}), "not_runtime"),
        ("settings/set", b"[]", "bad_payload"),
        ("capture", b"x" * 70_000, "too_large"),
    ],
)
def test_bad_commands_get_an_error_and_change_nothing(daemon: Daemon, suffix: str, payload: bytes, code: str) -> None:
    """Broken or out-of-range commands → B/error with the code; settings unchanged; captures still served."""
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"portrait": {"blur": 42}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["portrait"]["blur"] == 42, start=mark)
    mark = daemon.watch.mark()
    daemon.cmd(suffix, payload)
    err = daemon.error(lambda e: e["error"] == code, start=mark)
    assert set(err) == {"id", "error", "detail"} and err["detail"]
    daemon.cmd("capture", {"id": f"still-{code}"})
    daemon.result(f"still-{code}", start=mark)
    states = [m for m in daemon.watch.messages[mark:] if m.topic == f"{daemon.base}/settings/state"]
    assert states == []  # nothing was applied or echoed


def test_triggers_beyond_the_queue_limit_are_busy(daemon: Daemon) -> None:
    """With queue_limit 2, six quick triggers: each id gets exactly one answer, at least one `busy`."""
    mark = daemon.watch.mark()
    ids = [f"q{i}" for i in range(6)]
    for cid in ids:
        daemon.cmd("capture", {"id": cid, "countdown_s": 0.5})
    def answers() -> list[tuple[str, str]]:
        out = []
        for m in daemon.watch.messages[mark:]:
            if m.topic in (f"{daemon.base}/result", f"{daemon.base}/error"):
                p = json.loads(m.payload)
                if p.get("id") in ids:
                    out.append((p["id"], "error:" + p["error"] if "error" in p else "result"))
        return out

    for cid in ids:
        daemon.watch.wait_for(lambda m, cid=cid: m.topic in (f"{daemon.base}/result", f"{daemon.base}/error")
                              and json.loads(m.payload).get("id") == cid, timeout=120, start=mark)
    # captures are taken in order: once a later one's result is out, no answer to these can still come
    daemon.cmd("capture", {"id": "after-the-burst"})
    daemon.result("after-the-burst", start=mark)
    got = answers()
    assert len(got) == len({cid for cid, _ in got}), f"an id was answered twice: {got}"
    answered = dict(got)
    assert sorted(answered) == ids
    assert "error:busy" in answered.values()
    assert list(answered.values()).count("result") >= 1


def test_health_is_retained_with_contract_fields(daemon: Daemon) -> None:
    """B/health carries the contract fields; the stream runs (pipeline fps > 0, camera ok)."""
    mark = daemon.watch.mark()
    daemon.cmd("health/get", b"")
    m = daemon.wait("health", lambda m: json.loads(m.payload)["pipeline"]["fps"] > 0, start=mark)
    HealthMessage.model_validate_json(m.payload)  # every field the docs name, nothing else
    h = json.loads(m.payload)
    for key in ("ts", "uptime_s", "version", "state"):
        assert key in h
    assert set(h["camera"]) >= {"state", "fps", "frames", "dropped", "reconnects"}
    assert h["camera"]["state"] == "ok"
    assert set(h["inference"]) >= {"device", "precision", "precision_reason", "model", "ms_p50", "ms_p95"}
    assert h["inference"]["ms_p50"] > 0
    assert set(h["pipeline"]) >= {"fps", "latency_ms_p50", "latency_ms_p95"}
    assert "pending" in h["mqtt"]
    assert set(h["system"]) == {"cpu_percent", "rss_mb", "temperature_c"} and h["system"]["rss_mb"] > 10
    late = daemon.watcher([f"{daemon.base}/health"])
    try:
        late.wait_for(lambda m: m.retain)
    finally:
        late.close()


def test_failed_save_is_an_error_uses_no_seq_and_daemon_keeps_serving(daemon: Daemon) -> None:
    """output_dir unusable → B/error write_failed; once it is back the next result has the next seq (no gap)."""
    mark = daemon.watch.mark()
    daemon.cmd("capture", {"id": "before-fail"})
    before = daemon.result("before-fail", start=mark)
    out = daemon.root / "out"
    moved = daemon.root / "out-moved"
    out.rename(moved)
    out.write_text("a file where the directory was")
    try:
        daemon.cmd("capture", {"id": "no-space"})
        err = daemon.error(lambda e: e["id"] == "no-space", start=mark)
        assert err["error"] == "write_failed"
    finally:
        out.unlink()
        moved.rename(out)
    daemon.cmd("capture", {"id": "after-fail"})
    assert daemon.result("after-fail", start=mark)["seq"] == before["seq"] + 1


def test_model_change_is_compiled_in_background_and_swapped_in(daemon: Daemon) -> None:
    """settings/set {"model": {"name": "general"}}: settings/state shows it once compiled; results use it."""
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"model": {"name": "general"}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["model"]["name"] == "general", 120, mark)
    daemon.cmd("capture", {"id": "with-general"})
    r = daemon.result("with-general", start=mark)
    assert r["model"] == "general"
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"model": {"name": "landscape"}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["model"]["name"] == "landscape", 120, mark)


def test_interval_capture_switched_on_and_off_at_run_time(daemon: Daemon) -> None:
    """settings/set capture.interval_s=1 starts unattended captures (trigger `interval`); 0 stops them."""
    mark = daemon.watch.mark()
    daemon.cmd("settings/set", {"capture": {"interval_s": 1}})
    r = json.loads(daemon.wait("result", lambda m: json.loads(m.payload)["trigger"] == "interval", 60, mark).payload)
    assert r["id"] and Path(r["path"]).is_file()
    daemon.cmd("settings/set", {"capture": {"interval_s": 0}})
    daemon.wait("settings/state", lambda m: json.loads(m.payload)["capture"]["interval_s"] == 0, start=mark)


def test_home_assistant_discovery_published_and_renewed_on_ha_online(daemon: Daemon) -> None:
    """One device discovery config is retained under the discovery prefix and sent again when HA says
    `online`; the per-entity topics of earlier daemons are cleared once per start, not again then
    (Home Assistant would log a conflict for each)."""
    device_topic = "ha-test/device/it-main/config"
    w = daemon.watcher([device_topic, "ha-test/+/it-main/+/config"])
    try:
        first = w.wait_for(lambda m: m.topic == device_topic and m.retain)
        components = json.loads(first.payload)["components"]
        assert components["portrait"]["topic"] == f"{daemon.base}/result/image"
        mark = w.mark()
        w.publish("ha-test/status", b"online")
        again = w.wait_for(lambda m: m.topic == device_topic, start=mark)
        assert json.loads(again.payload)["components"]["capture"]["command_topic"] == f"{daemon.base}/capture"
        # the clears, when sent, come before the device message
        assert [m.topic for m in w.messages[mark : w.messages.index(again)] if m.payload == b""] == []
    finally:
        w.close()


def test_1080p_capture_is_saved_full_size_and_scaled_down_for_mqtt(mosquitto: Broker, tmp_path: Path) -> None:
    """At 1080p with max_image_bytes 64 KiB: the file is 1920×1080, the MQTT JPEG fits the limit, same aspect."""
    d = start_daemon(tmp_path, mosquitto, "it-1080", camera={"width": 1920, "height": 1080},
                     mqtt={"max_image_bytes": 65536})
    try:
        mark = d.watch.mark()
        d.cmd("capture", {"id": "big"})
        r = d.result("big", start=mark)
        assert (r["width"], r["height"]) == (1920, 1080)
        saved = Path(r["path"]).read_bytes()
        assert _decode(saved).shape == (1080, 1920, 3) and len(saved) > 65536
        image = d.image_for(r, start=mark)
        assert len(image) == r["bytes"] <= 65536
        h, w = _decode(image).shape[:2]
        assert w < 1920 and abs(w / h - 16 / 9) < 0.02
    finally:
        end_daemon(d)


def test_capture_while_camera_is_down_is_an_error_then_served_when_back(mosquitto: Broker, tmp_path: Path) -> None:
    """Camera gone → capture answered `camera_unavailable` (bounded by capture.timeout_s); camera back → served."""
    d = start_daemon(tmp_path, mosquitto, "it-camdown", capture={"timeout_s": 2})
    photos = tmp_path / "photos"
    hidden = tmp_path / "photos-away"
    try:
        photos.rename(hidden)
        mark = d.watch.mark()
        d.wait("health", lambda m: json.loads(m.payload)["camera"]["state"] != "ok", timeout=60, start=mark)
        d.cmd("capture", {"id": "no-camera"})
        err = d.error(lambda e: e["id"] == "no-camera", start=mark)
        assert err["error"] == "camera_unavailable" and "camera" in err["detail"]
        hidden.rename(photos)
        d.wait("health", lambda m: json.loads(m.payload)["camera"]["state"] == "ok", timeout=60, start=mark)
        d.cmd("capture", {"id": "camera-back"})
        d.result("camera-back", start=mark)
    finally:
        end_daemon(d)


def test_sigkill_makes_the_broker_deliver_offline(mosquitto: Broker, tmp_path: Path) -> None:
    """After SIGKILL the broker publishes the last will: B/status `offline`, retained."""
    d = start_daemon(tmp_path, mosquitto, "it-kill")
    try:
        mark = d.watch.mark()
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        m = d.wait("status", lambda m: m.payload == b"offline", start=mark)
        assert m.payload == b"offline"
        late = Watcher(mosquitto.host, mosquitto.port, [f"{d.base}/status"])
        try:
            late.wait_for(lambda m: m.retain and m.payload == b"offline")
        finally:
            late.close()
    finally:
        end_daemon(d)


def test_sigterm_finishes_capture_publishes_stopped_and_exits_0(mosquitto: Broker, tmp_path: Path) -> None:
    """SIGTERM during a capture countdown: that capture's result still arrives, then `stopped`, exit 0."""
    d = start_daemon(tmp_path, mosquitto, "it-term")
    try:
        mark = d.watch.mark()
        d.cmd("capture", {"id": "last", "countdown_s": 30})
        # commands are handled in the order they arrive: the echo of this change means
        # the capture above was taken (and is counting down) before the signal
        d.cmd("settings/set", {"capture": {"jpeg_quality": 91}})
        d.wait("settings/state", lambda m: json.loads(m.payload)["capture"]["jpeg_quality"] == 91, start=mark)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(20) == 0, d.log_tail()
        d.result("last", start=mark)
        d.wait("status", lambda m: m.payload == b"stopped", start=mark)
        assert not any(m.payload == b"offline" for m in d.watch.messages[mark:] if m.topic.endswith("/status"))
    finally:
        end_daemon(d)
