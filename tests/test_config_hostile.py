"""Configs made to hurt (issue 9): every one ends in a verdict, fast, in bounded memory, in plain words."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeportrait.config import MAX_CONFIG_BYTES


def _cli(*args: str | Path, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "edgeportrait", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def _laughs(levels: int, width: int) -> str:
    """The billion laughs: each level a list of ``width`` aliases of the one below."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"device_id: *a{levels}")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int) -> str:
    """Merge keys that double at each level: ``<<: [*prev, *prev]``."""
    lines = ["m0: &m0 {x: 1, y: 2}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        _laughs(9, 9),
        _laughs(7, 10),
        _laughs(30, 2),
        _merge_bomb(40),
        "portrait:\n" + "".join(f"  {line}\n" for line in _laughs(9, 9).splitlines()),
    ],
    ids=["laughs-9x9", "laughs-7x10", "laughs-30x2", "merge-40", "nested"],
)
def test_alias_bombs_end_in_exit_78_quickly(tmp_path: Path, text: str) -> None:
    """A few hundred bytes of nested aliases: exit 78 in seconds, naming the aliases (not 90 s and 5 GB)."""
    p = tmp_path / "bomb.yaml"
    p.write_text(text)
    r, elapsed = _cli("config", "check", "-c", p)
    assert r.returncode == 78, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_a_long_value_repeated_by_aliases_is_shown_short_and_fast(tmp_path: Path) -> None:
    """5,000 aliases of a 40 kB string in a wrong place: the error shows a short prefix of the value,
    at once (turning it into 200 MB of text took minutes)."""
    p = tmp_path / "long.yaml"
    p.write_text('big: &s "' + "x" * 40_000 + '"\ndevice_id: [' + ",".join(["*s"] * 5000) + "]\n")
    r, elapsed = _cli("config", "check", "-c", p)
    assert r.returncode == 78, r.stderr
    assert f"{p}:2: device_id: Input should be a valid string" in r.stderr
    assert len(r.stderr) < 1000 and elapsed < 10, (len(r.stderr), elapsed)


def test_a_few_aliases_in_a_real_config_still_work(tmp_path: Path) -> None:
    """Anchors that repeat a value are fine; only an explosion is refused."""
    p = tmp_path / "ok.yaml"
    p.write_text("portrait: {blur: &b 20, feather: *b}\nhealth: {interval_s: *b}\n")
    r, _ = _cli("config", "check", "-c", p)
    assert r.returncode == 0, r.stderr


def test_dev_zero_and_a_fifo_are_refused_at_once(tmp_path: Path) -> None:
    """`-c /dev/zero` and `-c FIFO` (no writer): one line naming the file and what it is, exit 78."""
    fifo = tmp_path / "cfg.fifo"
    os.mkfifo(fifo)
    for path, kind in (("/dev/zero", "character device"), (fifo, "FIFO")):
        r, elapsed = _cli("config", "check", "-c", path, timeout=20)
        assert r.returncode == 78, r.stderr
        assert r.stderr == f"edgeportrait: {path}: not a regular file (a {kind}); a config is a YAML file\n"
        assert elapsed < 10


def test_a_file_above_the_limit_is_refused_after_reading_at_most_the_limit(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * MAX_CONFIG_BYTES)
    r, _ = _cli("run", "-c", p)
    assert r.returncode == 78 and "larger than" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ('portrait:\n  color: ["1", "2", "3"]\n', "portrait.color"),
        ("portrait:\n  color: [true, false, true]\n", "portrait.color"),
        ('portrait:\n  color: [10, 20, "30"]\n', "portrait.color"),
        ('camera:\n  rotate: "90"\n', "camera.rotate"),
        ("camera:\n  rotate: false\n", "camera.rotate"),
        ("camera:\n  still_width: true\n", "camera.still_width"),
        ('mqtt:\n  port: "1883"\n', "mqtt.port"),
    ],
)
def test_numbers_in_the_yaml_must_be_numbers(tmp_path: Path, yaml_text: str, key: str) -> None:
    """A string or a boolean where a number (or a list of numbers) belongs: exit 78 naming the key and line."""
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml_text)
    r, _ = _cli("config", "check", "-c", p)
    assert r.returncode == 78, r.stderr
    assert f"{p}:2: {key}: " in r.stderr and "a number is expected" in r.stderr, r.stderr
    assert "Value error" not in r.stderr


def test_messages_a_new_user_sees_are_plain(tmp_path: Path) -> None:
    """Missing file with the program's name; --mode image without a picture in plain words;
    a subcommand's wrong flag labelled by that subcommand; a misspelt key gets a suggestion."""
    r, _ = _cli("run", "-c", tmp_path / "nope.yaml")
    assert r.returncode == 78 and r.stderr == f"edgeportrait: {tmp_path / 'nope.yaml'}: no such file\n"

    src = tmp_path / "a.png"
    src.write_bytes(b"")
    r, _ = _cli("process", src, "-o", tmp_path / "o", "--mode", "image")
    assert r.returncode == 78, r.stderr
    assert r.stderr.startswith("edgeportrait: ") and "portrait.image" in r.stderr
    for internal in ("Value error", "<defaults>", "Traceback"):
        assert internal not in r.stderr, r.stderr

    for argv, label in ((["process", src, "-o", "x", "--nope"], "edgeportrait process: error:"),
                        (["config", "check", "-c", "x", "--nope"], "edgeportrait config check: error:"),
                        (["segment", src, "-o", "x", "--frobnicate"], "edgeportrait segment: error:")):
        r, _ = _cli(*argv)
        assert r.returncode == 2 and r.stderr.startswith(label) and "--" in r.stderr, r.stderr

    p = tmp_path / "typo.yaml"
    p.write_text("portrait:\n  blurr: 5\ncamra: {}\n")
    r, _ = _cli("config", "check", "-c", p)
    assert f"{p}:2: portrait.blurr: unknown key (did you mean 'blur'?)" in r.stderr, r.stderr
    assert f"{p}:3: camra: unknown key (did you mean 'camera'?)" in r.stderr, r.stderr
