"""Hostile and unlucky inputs against the real daemon and a real mosquitto (issue 9).

A broker client that misbehaves, a state directory that fails, a second booth
with the same device id: each test here sends what such a client (or such
luck) sends and asserts what the daemon publishes and logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Broker
from test_daemon import Daemon, end_daemon, start_daemon


@pytest.fixture(scope="module")
def daemon(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("hostile"), mosquitto, "it-hostile")
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
