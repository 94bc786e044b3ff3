"""Property-based fuzzing of every subscribed topic against the running daemon (issue 5).

At least 10,000 generated payloads — random bytes, invalid UTF-8, deep and
huge JSON, wrong types, out-of-range, unknown and not-runtime settings,
oversized messages — go to B/capture, <prefix>/all/capture and B/settings/set.
Every one is invalid by construction and must be answered on B/error; no
portrait is taken, the settings stay as they were, and the daemon still serves
a capture afterwards. B/health/get accepts anything and must answer each with
a health report.
"""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator

import pytest
from conftest import Broker
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_daemon import Daemon, end_daemon, start_daemon

from edgeportrait.config import AppConfig, PortraitConfig
from edgeportrait.config.portrait import MODES

BATCH = 100
BATCHES = 101  # 10,100 payloads on the command topics
MAX_MESSAGE_BYTES = 65536  # the daemon's default mqtt.max_message_bytes
# known names, so the generators can make names that are not known
_SECTIONS = set(AppConfig.model_fields)
_PORTRAIT_KEYS = set(PortraitConfig.model_fields)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=10,
)


def _not_json_object(b: bytes) -> bool:
    try:
        data = json.loads(b.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return bool(b.strip(b" \t\r\n"))  # JSON whitespace only is a valid (empty) capture
    return not isinstance(data, dict)


def _not_a_countdown(v: object) -> bool:
    return not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 60)


def _not_a_blur(v: object) -> bool:
    return not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 100)


_deep = st.integers(min_value=1000, max_value=30000).map(lambda n: ("[" * n + "]" * n).encode())
_deep_obj = st.integers(min_value=1000, max_value=6000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode())
_invalid_utf8 = st.binary(min_size=1, max_size=64).map(lambda b: b"\xff" + b)
_random_bytes = st.binary(min_size=1, max_size=200).filter(_not_json_object)
_random_text = st.text(min_size=1, max_size=200).map(str.encode).filter(_not_json_object)
_non_object_json = JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode())
_bad_key = st.text(min_size=1, max_size=10).filter(lambda k: k not in {"id", "countdown_s", "settings"})

_bad_capture_objects = st.one_of(
    st.dictionaries(_bad_key, JSON_VALUES, min_size=1, max_size=3),  # unknown keys
    st.fixed_dictionaries({"countdown_s": JSON_VALUES.filter(lambda v: v is not None and _not_a_countdown(v))}),
    st.fixed_dictionaries(
        {"id": JSON_VALUES.filter(lambda v: v is not None and not (isinstance(v, str) and 0 < len(v) <= 128))}
    ),
    st.fixed_dictionaries({"id": st.text(min_size=129, max_size=300)}),
    st.fixed_dictionaries({"settings": JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, dict))}),
    st.fixed_dictionaries(
        {
            "settings": st.fixed_dictionaries(
                {"portrait": st.fixed_dictionaries({"blur": JSON_VALUES.filter(_not_a_blur)})}
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "settings": st.dictionaries(
                st.text(max_size=8).filter(lambda k: k not in {"portrait", "capture"}),
                st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=2),
                min_size=1,
                max_size=2,
            )
        }
    ),
)

_bad_settings_objects = st.one_of(
    st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in {"id"} | _SECTIONS), JSON_VALUES, min_size=1, max_size=3
    ),
    st.fixed_dictionaries({"portrait": st.fixed_dictionaries({"blur": JSON_VALUES.filter(_not_a_blur)})}),
    st.fixed_dictionaries(
        {
            "portrait": st.fixed_dictionaries(
                {"mode": JSON_VALUES.filter(lambda v: v not in MODES)}
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "portrait": st.dictionaries(
                st.text(min_size=1, max_size=8, alphabet=string.ascii_letters).filter(
                    lambda k: k not in _PORTRAIT_KEYS
                ),
                JSON_SCALARS,
                min_size=1,
                max_size=2,
            )
        }
    ),
    st.fixed_dictionaries({"mqtt": st.fixed_dictionaries({"host": st.text(min_size=1, max_size=10)})}),  # not runtime
    st.fixed_dictionaries(
        {
            "pipeline": st.fixed_dictionaries(
                {
                    "max_fps": st.one_of(
                        st.floats(max_value=0, allow_nan=False),
                        st.floats(min_value=1000, allow_infinity=False),
                        st.text(),
                    )
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "model": st.fixed_dictionaries(
                {"device": st.text(max_size=6).filter(lambda v: v not in ("AUTO", "CPU", "GPU", "NPU"))}
            )
        }
    ),
    st.fixed_dictionaries({"portrait": JSON_SCALARS}),
    st.fixed_dictionaries({"id": JSON_VALUES.filter(lambda v: not isinstance(v, str)), "portrait": st.just({})}),
)

_garbage = st.one_of(_deep, _deep_obj, _invalid_utf8, _random_bytes, _random_text, _non_object_json)
CAPTURE_PAYLOADS = st.one_of(_garbage, _bad_capture_objects.map(lambda d: json.dumps(d).encode()))
SETTINGS_PAYLOADS = st.one_of(_garbage, st.just(b""), _bad_settings_objects.map(lambda d: json.dumps(d).encode()))


@pytest.fixture(scope="module")
def fuzz_daemon(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("fuzz"), mosquitto, "fuzz-1")
    yield d
    end_daemon(d)


class Tally:
    sent = 0


def _count(d: Daemon, suffix: str, start: int) -> int:
    topic = f"{d.base}/{suffix}"
    with d.watch._cond:
        return sum(1 for m in d.watch.messages[start:] if m.topic == topic)


def _settings_state(d: Daemon) -> dict:
    """The newest B/settings/state (retained, so there is always one)."""
    d.wait("settings/state")
    with d.watch._cond:
        last = [m for m in d.watch.messages if m.topic == f"{d.base}/settings/state"][-1]
    return json.loads(last.payload)


@settings(
    max_examples=BATCHES,
    deadline=None,
    derandomize=False,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(["capture", "all/capture", "settings/set"]), st.data()),
        min_size=BATCH,
        max_size=BATCH,
    )
)
def _fuzz_batch(d: Daemon, batch: list) -> None:
    # Draw every payload before sending any: hypothesis may abandon an example
    # part-way through its draws, and a half-sent batch would skew the count.
    sent = []
    for topic, data in batch:
        payload = data.draw(SETTINGS_PAYLOADS if topic == "settings/set" else CAPTURE_PAYLOADS)
        full = f"edgeportrait/{topic}" if topic == "all/capture" else f"{d.base}/{topic}"
        sent.append((full, payload))
    start = d.watch.mark()
    infos = [d.watch.client.publish(topic, payload, qos=1) for topic, payload in sent]
    for info in infos:
        info.wait_for_publish(30)
    Tally.sent += len(sent)
    deadline = time.monotonic() + 60
    while _count(d, "error", start) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.02)
    # commands are answered in order: once this one's answer is out, no second answer to
    # a payload above can still come
    sentinel = f"sentinel-{Tally.sent}"
    d.cmd("settings/set", {"id": sentinel, "portrait": {"blur": -1}})
    d.error(lambda e: e["id"] == sentinel, start=start)
    assert _count(d, "error", start) == len(sent) + 1, [(t, p[:160]) for t, p in sent]
    assert _count(d, "result", start) == 0, "a fuzzed payload made a portrait"
    assert d.proc.poll() is None, d.log_tail()


def test_ten_thousand_bad_commands_are_each_answered_and_change_nothing(fuzz_daemon: Daemon) -> None:
    d = fuzz_daemon
    before = _settings_state(d)
    mark = d.watch.mark()

    # the hypothesis-driven part: random batches across the three command topics
    _fuzz_batch(d)
    assert Tally.sent >= 10_000

    # oversized messages on every command topic
    start = d.watch.mark()
    big = [b"{" + b" " * MAX_MESSAGE_BYTES + b"}", b"x" * (MAX_MESSAGE_BYTES + 1), b"\x00" * (4 * MAX_MESSAGE_BYTES)]
    for payload in big:
        for topic in ("capture", "settings/set"):
            d.watch.publish(f"{d.base}/{topic}", payload)
        d.watch.publish("edgeportrait/all/capture", payload)
    d.watch.wait_for(lambda m: _count(d, "error", start) >= 9, timeout=30, start=start)
    too_large = [json.loads(m.payload) for m in d.watch.messages[start:] if m.topic == f"{d.base}/error"]
    assert all(e["error"] == "too_large" for e in too_large) and len(too_large) == 9

    # every error is the contract's shape
    for m in d.watch.messages[mark:]:
        if m.topic == f"{d.base}/error":
            e = json.loads(m.payload)
            assert set(e) == {"id", "error", "detail"} and isinstance(e["error"], str) and e["error"]

    # nothing changed, and the daemon still serves
    assert _count(d, "result", mark) == 0
    assert _settings_state(d) == before
    start = d.watch.mark()
    d.cmd("capture", {"id": "after-fuzz"})
    assert d.result("after-fuzz", start=start)["id"] == "after-fuzz"


def test_health_get_answers_anything(fuzz_daemon: Daemon) -> None:
    """B/health/get takes any payload (bytes, JSON, nothing) and publishes B/health for each."""
    d = fuzz_daemon
    payloads = [b"", b"\xff\xfe", b"{}", b"[" * 5000, b"now please", json.dumps({"x": 1}).encode()]
    for payload in payloads:
        start = d.watch.mark()
        d.watch.publish(f"{d.base}/health/get", payload)
        m = d.wait("health", start=start, timeout=20)
        assert json.loads(m.payload)["state"]
