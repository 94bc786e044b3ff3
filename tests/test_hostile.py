"""Hostile and unlucky inputs against the real daemon and a real mosquitto (issue 9).

A broker client that misbehaves, a state directory that fails, a second booth
with the same device id: each test here sends what such a client (or such
luck) sends and asserts what the daemon publishes and logs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Broker
from mqtt_watch import Msg, Watcher
from test_daemon import Daemon, end_daemon, start_daemon


@pytest.fixture(scope="module")
def daemon(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("hostile"), mosquitto, "it-hostile")
    d.wait("settings/state")  # published on connect: later ones are answers to the tests
    yield d
    end_daemon(d)


def wait_log(d: Daemon, pred: Callable[[str], bool], timeout: float = 20.0) -> str:
    """The daemon's log once ``pred`` holds for it (polled: the log is a file)."""
    deadline = time.monotonic() + timeout
    while True:
        text = d.log.read_text(errors="replace")
        if pred(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"log never matched; tail:\n{d.log_tail()}")
        time.sleep(0.05)


# -- log injection ------------------------------------------------------------------


FORGED = "\nERROR edgeportrait.daemon: FORGED LINE\x1b[31m"


@pytest.mark.parametrize(
    ("suffix", "payload", "marker"),
    [
        # a capture id (answered with a result: logged when queued and when made)
        ("capture", {"id": "x" + FORGED}, "capture x\\nERROR"),
        # an id that is refused (the error's log line)
        ("capture", {"id": "y" + FORGED, "countdown_s": -1}, "for id y\\nERROR"),
        # a settings key, named in the error detail
        ("settings/set", {"portrait": {"z" + FORGED: 1}}, "portrait.z\\nERROR"),
        # a settings id with a Unicode line separator and a bidi override
        ("settings/set", {"id": "w\u2028FORGED\u202e", "portrait": {"blur": 1000}}, "w\\u2028FORGED\\u202e"),
    ],
)
def test_text_from_the_broker_is_logged_escaped(daemon: Daemon, suffix: str, payload: dict, marker: str) -> None:
    """Ids and keys with newlines and escape sequences are logged on one line, escaped; no forged line."""
    daemon.cmd(suffix, payload)
    text = wait_log(daemon, lambda t: marker in t)
    assert "\x1b" not in text
    assert "\u2028" not in text and "\u202e" not in text
    forged = [ln for ln in text.splitlines() if ln.startswith(("ERROR edgeportrait.daemon: FORGED", "FORGED"))]
    assert forged == []


# -- retained commands and their clears --------------------------------------------


def test_health_shows_an_empty_spool_as_zero_counts(daemon: Daemon) -> None:
    """An empty spool is {"entries": 0, "bytes": 0, "dropped": 0} in health, not null."""
    mark = daemon.watch.mark()
    daemon.cmd("health/get", b"")
    m = daemon.wait("health", lambda m: json.loads(m.payload)["mqtt"]["spool"] is not None
                    and json.loads(m.payload)["mqtt"]["spool"]["entries"] == 0, start=mark)
    assert json.loads(m.payload)["mqtt"]["spool"] == {"entries": 0, "bytes": 0, "dropped": 0}


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_retained_commands_are_refused_with_their_id_and_their_clears_do_nothing(
    mosquitto: Broker, tmp_path: Path, protocol: str
) -> None:
    """Retained commands found at connect → `retained` errors carrying the payload's id; the empty
    retained messages that clear them (capture, settings/set, health/get) are no command at all."""
    device = f"it-retained-{protocol.replace('.', '')}"
    base = f"edgeportrait/{device}"
    left = {
        "capture": json.dumps({"id": "ret-capture"}),
        "settings/set": json.dumps({"id": "ret-set", "portrait": {"blur": 3}}),
        "health/get": "please",
    }
    d: Daemon | None = None
    w = Watcher(mosquitto.host, mosquitto.port, ["test/unused"])
    try:
        for suffix, payload in left.items():
            w.publish(f"{base}/{suffix}", payload, retain=True)
        d = start_daemon(tmp_path, mosquitto, device, mqtt={"protocol": protocol}, health={"interval_s": 300})
        errors = [d.error(lambda e, cid=cid: e["id"] == cid) for cid in ("ret-capture", "ret-set")]
        assert [e["error"] for e in errors] == ["retained", "retained"]
        d.error(lambda e: e["error"] == "retained" and "health/get" in e["detail"])
        d.wait("health")  # the one published on connect
        mark = d.watch.mark()
        for suffix in left:
            w.publish(f"{base}/{suffix}", b"", retain=True)
        d.cmd("capture", {"id": "after-clears"})
        d.result("after-clears", start=mark)
        # messages are handled and captures taken in order: once a later capture's result
        # is out, no answer to a clear (or capture it started) can still come
        d.cmd("capture", {"id": "sentinel"})
        end = d.watch.messages.index(d.watch.wait_for(
            lambda m: m.topic == f"{base}/result" and json.loads(m.payload)["id"] == "sentinel", start=mark))
        seen = [(m.topic.removeprefix(base + "/"), m.payload) for m in d.watch.messages[mark:end]
                if not m.topic.endswith("/result/image")]
        results = [json.loads(p)["id"] for t, p in seen if t == "result"]
        assert results == ["after-clears"], seen
        assert [t for t, _ in seen if t in ("error", "health", "settings/state")] == [], seen
    finally:
        for suffix in left:
            w.publish(f"{base}/{suffix}", b"", retain=True)
        w.close()
        if d is not None:
            end_daemon(d)


def test_a_live_retained_fleet_capture_is_refused_and_its_clear_takes_no_picture(daemon: Daemon) -> None:
    """MQTT 5: `mosquitto_pub -r` on the fleet topic → `retained` error with its id; `-r -n` → nothing."""
    fleet = "edgeportrait/all/capture"
    mark = daemon.watch.mark()
    try:
        daemon.watch.publish(fleet, json.dumps({"id": "fleet-ret"}), retain=True)
        err = daemon.error(lambda e: e["id"] == "fleet-ret", start=mark)
        assert err["error"] == "retained"
    finally:
        daemon.watch.publish(fleet, b"", retain=True)
    daemon.cmd("capture", {"id": "after-fleet-clear"})
    daemon.result("after-fleet-clear", start=mark)
    daemon.cmd("capture", {"id": "fleet-sentinel"})  # taken after anything the clear could have started
    daemon.result("fleet-sentinel", start=mark)
    results = [json.loads(m.payload)["id"] for m in daemon.watch.messages[mark:] if m.topic == f"{daemon.base}/result"]
    assert results == ["after-fleet-clear", "fleet-sentinel"]


# -- numbers are numbers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "payload"),
    [
        ("settings/set", {"portrait": {"color": ["1", "2", "3"]}}),
        ("settings/set", {"portrait": {"color": [True, False, True]}}),
        ("settings/set", {"portrait": {"color": [10, 20, "30"]}}),
        ("settings/set", {"pipeline": {"segment_every": True}}),
        ("settings/set", {"capture": {"jpeg_quality": "90"}}),
        ("capture", {"settings": {"portrait": {"color": [True, 2, 3]}}}),
        ("capture", {"settings": {"portrait": {"color": ["0", "0", "0"]}}}),
    ],
)
def test_strings_and_booleans_are_not_numbers_over_mqtt(daemon: Daemon, suffix: str, payload: dict) -> None:
    """A string or boolean where a number (or a list of numbers) belongs → invalid_value; nothing changes."""
    cid = f"num-{abs(hash(json.dumps(payload))) % 10**8}"
    mark = daemon.watch.mark()
    daemon.cmd(suffix, {"id": cid, **payload})
    err = daemon.error(lambda e: e["id"] == cid, start=mark)
    assert err["error"] == "invalid_value" and "a number is expected" in err["detail"], err
    assert not [m for m in daemon.watch.messages[mark:] if m.topic in (f"{daemon.base}/settings/state",
                                                                       f"{daemon.base}/result")]


# -- model changes over MQTT -----------------------------------------------------------


@pytest.fixture(scope="module")
def swapper(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon of its own: model changes, and its threads and fds counted."""
    d = start_daemon(tmp_path_factory.mktemp("swapper"), mosquitto, "it-swapper")
    d.wait("settings/state")
    yield d
    end_daemon(d)


def _proc(pid: int) -> tuple[float, int, int]:
    """RSS (MB), threads and open fds of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def _inference(m: Msg) -> dict:
    return json.loads(m.payload)["inference"]


def _settled_on(name: str, precision: str) -> Callable[[Msg], bool]:
    """A health report saying this model runs and no switch is pending."""
    def pred(m: Msg) -> bool:
        inf = _inference(m)
        return (inf["model"], inf["precision"]) == (name, precision) and "switching_to" in inf \
            and inf["switching_to"] is None
    return pred


def _swap(d: Daemon, name: str, precision: str) -> None:
    mark = d.watch.mark()
    d.cmd("settings/set", {"model": {"name": name, "precision": precision}})
    d.wait("settings/state", lambda m: json.loads(m.payload)["model"] == {"name": name, "precision": precision,
                                                                         "device": "CPU"}, 120, mark)


def _released(d: Daemon) -> None:
    """Wait for a health report saying only one compiled model is left (the swapped-out one released)."""
    mark = d.watch.mark()
    d.cmd("health/get", b"")
    d.wait("health", lambda m: _inference(m).get("models_loaded") == 1 and _inference(m)["switching_to"] is None,
           60, mark)


def _wait_until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_model_swaps_give_back_threads_fds_and_memory(swapper: Daemon) -> None:
    """Alternating model changes: once the old models' last requests end, threads and fds are back
    where they started and RSS has not grown by a model per swap (was +4 threads, +2 fds, +23 MB each)."""
    d = swapper
    pid = d.proc.pid
    for name, precision in (("general", "int8"), ("landscape", "int8")):  # warm up: caches, thread pools
        _swap(d, name, precision)
    _released(d)
    rss0, threads0, fds0 = _proc(pid)
    for name, precision in [("general", "fp32"), ("landscape", "fp32"), ("general", "int8"),
                            ("landscape", "int8")] * 2:
        _swap(d, name, precision)
    _released(d)
    back = _wait_until(lambda: _proc(pid)[1] <= threads0 + 1 and _proc(pid)[2] <= fds0 + 1, 30)
    rss1, threads1, fds1 = _proc(pid)
    assert back, f"threads {threads0} -> {threads1}, fds {fds0} -> {fds1}"
    assert rss1 - rss0 < 60, f"RSS {rss0:.0f} -> {rss1:.0f} MB after 8 swaps"
    # and the daemon still serves with the model asked for last
    mark = d.watch.mark()
    d.cmd("capture", {"id": "after-swaps"})
    r = d.result("after-swaps", start=mark)
    assert (r["model"], r["precision"]) == ("landscape", "int8")


def test_the_last_model_change_wins(swapper: Daemon) -> None:
    """landscape/int8 running; general/fp32 and at once landscape/int8 → stays landscape/int8.
    A burst of changes ends on the last one asked for; settings/state and health agree."""
    d = swapper
    _swap(d, "landscape", "int8")
    bursts = [
        [("general", "fp32"), ("landscape", "int8")],
        [("general", "fp32"), ("landscape", "fp32"), ("general", "int8"), ("landscape", "int8")] * 5
        + [("general", "fp32")],
    ]
    for burst in bursts:
        last = burst[-1]
        for name, precision in burst:
            d.cmd("settings/set", {"model": {"name": name, "precision": precision}})
        mark = d.watch.mark()
        d.wait("health", _settled_on(*last), 120, mark)
        # it stays there: the health reports that follow (one a second) and the retained state agree
        for _ in range(3):
            mark = d.watch.mark()
            m = d.wait("health", start=mark)
            assert _settled_on(*last)(m), _inference(m)
        late = d.watcher([f"{d.base}/settings/state"])
        try:
            state = json.loads(late.wait_for(lambda m: m.retain).payload)
        finally:
            late.close()
        assert (state["model"]["name"], state["model"]["precision"]) == last


# -- a failing state directory -----------------------------------------------------------


def _answers(d: Daemon, cid: str) -> list[dict]:
    out = []
    for m in d.watch.messages:
        if m.topic in (f"{d.base}/result", f"{d.base}/error"):
            p = json.loads(m.payload)
            if p.get("id") == cid:
                out.append(p)
    return out


def _mount_tmpfs(mnt: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    mnt.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("how", ["moved-away", "full"])
def test_a_failing_state_dir_never_reuses_a_seq_nor_deletes_a_delivered_portrait(
    mosquitto: Broker, tmp_path: Path, how: str
) -> None:
    """state_dir moved away (or full) during a capture, the daemon SIGKILLed before it is back: that
    trigger gets exactly one answer (before or after the restart), no published seq is reused and no
    delivered portrait is deleted by the recovery at the next start."""
    state = tmp_path / "state"
    mounted = False
    if how == "full":
        mounted = _mount_tmpfs(state, "256k")
        if not mounted:
            pytest.skip("needs root and tmpfs to fill a state directory")
    device = f"it-state-{how}"
    d = start_daemon(tmp_path, mosquitto, device)
    first = d
    try:
        mark = d.watch.mark()
        d.cmd("capture", {"id": "before"})
        d.result("before", start=mark)
        # the daemon is done with that result's spool entry: its removal frees no space once filled
        assert _wait_until(lambda: not any((state / "spool").iterdir()), 30), d.log_tail()
        filler = state / "filler"
        away = tmp_path / "state-away"
        if how == "moved-away":
            state.rename(away)
        else:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:  # fill the tmpfs to the last byte
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
        d.cmd("capture", {"id": "during"})
        # handled (its answer may wait in the spool until the state dir is back)
        wait_log(d, lambda t: "capture during: seq" in t or "capture during failed" in t, 60)
        time.sleep(0.3)  # an answer sent now reaches the watcher before the kill
        end_daemon(d)  # SIGKILL, the state dir still broken
        if how == "moved-away":
            away.rename(state)
        else:
            filler.unlink()

        d = start_daemon(tmp_path, mosquitto, device)
        mark = d.watch.mark()
        d.cmd("capture", {"id": "restarted"})
        again = d.result("restarted", start=mark)
        assert _wait_until(lambda: _answers(first, "during") + _answers(d, "during") != [], 30), d.log_tail()
        # a redelivered answer leaves the spool before newer results: once a later capture's
        # result is out, no second answer to "during" can still come
        d.cmd("capture", {"id": "sentinel"})
        d.result("sentinel", start=mark)
        answers = _answers(first, "during") + _answers(d, "during")
        # one answer per trigger; a result published just before the kill is sent again from the
        # spool after the restart, the same result (same seq and picture), which QoS 1 allows
        assert answers and len({(a.get("seq"), a.get("sha256"), a.get("error")) for a in answers}) == 1, answers
        assert len(answers) == 1 or all("seq" in a for a in answers), answers
        results = [a for w in (first, d) for cid in ("before", "during", "restarted") for a in _answers(w, cid)
                   if "seq" in a]
        # a redelivery of the same result is allowed (QoS 1); two different results with one seq are not
        distinct = {(r["seq"], r["id"], r["sha256"]) for r in results}
        seqs = sorted(seq for seq, _, _ in distinct)
        assert len(set(seqs)) == len(seqs), f"two results with the same seq: {sorted(distinct)}"
        assert again["seq"] == max(seqs)
        for r in results:
            assert Path(r["path"]).is_file(), f"delivered portrait {r['path']} (seq {r['seq']}) deleted"
    finally:
        end_daemon(d)
        if mounted:
            subprocess.run(["umount", "-l", str(state)], check=False)


# -- output_dir ------------------------------------------------------------------------------


def test_a_deleted_output_dir_is_made_again_and_errors_name_it(daemon: Daemon) -> None:
    """output_dir deleted while running → the next capture makes it again and is saved there;
    an output_dir that cannot be made (a file in its place) → write_failed naming the directory."""
    out = daemon.root / "out"
    shutil.rmtree(out)
    mark = daemon.watch.mark()
    daemon.cmd("capture", {"id": "out-gone"})
    r = daemon.result("out-gone", start=mark)
    assert Path(r["path"]).parent == out and Path(r["path"]).is_file()

    shutil.rmtree(out)
    out.write_text("a file where the directory was")
    try:
        daemon.cmd("capture", {"id": "out-blocked"})
        err = daemon.error(lambda e: e["id"] == "out-blocked", start=mark)
        assert err["error"] == "write_failed" and str(out) in err["detail"], err
    finally:
        out.unlink()
    daemon.cmd("capture", {"id": "out-back"})
    assert daemon.result("out-back", start=mark)["seq"] == r["seq"] + 1


# -- two daemons, one device_id ------------------------------------------------------------------



@pytest.mark.parametrize("client_ids", ["shared", "own"])
def test_two_daemons_with_one_device_id_say_so_and_back_off(
    mosquitto: Broker, tmp_path: Path, client_ids: str
) -> None:
    """Two booths flashed with the same device_id (and so the same client id, or each its own):
    each log says so in plain words, health shows it, and they back off instead of taking the
    connection from each other every second."""
    def mqtt(name: str) -> dict:
        return {"client_id": f"twin-{name}"} if client_ids == "own" else {}

    device = f"it-twin-{client_ids}"
    words = f"another daemon seems to use device_id {device!r}"
    a = start_daemon(tmp_path / "a", mosquitto, device, mqtt=mqtt("a"))
    b: Daemon | None = None
    try:
        b = start_daemon(tmp_path / "b", mosquitto, device, mqtt=mqtt("b"))
        for d in (a, b):
            wait_log(d, lambda t: words in t, 60)
        h = a.wait("health", lambda m: json.loads(m.payload)["mqtt"].get("duplicate") is not None, 60)
        assert words in json.loads(h.payload)["mqtt"]["duplicate"]
        instances = {json.loads(m.payload).get("instance") for m in a.watch.messages
                     if m.topic == f"{a.base}/health" and not m.retain}
        assert len(instances - {None}) == 2  # each start has its own id in health
        # backing off: over the next 15 s the status flips a few times, not every second
        mark = a.watch.mark()
        t0 = time.monotonic()
        _wait_until(lambda: False, 15.0)
        onlines = [m for m in a.watch.messages[mark:] if m.topic == f"{a.base}/status" and m.payload == b"online"]
        assert len(onlines) <= 4, f"{len(onlines)} reconnects in {time.monotonic() - t0:.0f} s"
    finally:
        if b is not None:
            end_daemon(b)
        end_daemon(a)
