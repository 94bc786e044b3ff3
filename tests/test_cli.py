"""The command line: user mistakes are one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeportrait", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--no-such-flag"],
        ["frobnicate"],
        ["process", "x.jpg"],  # -o missing
        ["segment", "x.jpg", "-o", "out", "--precision", "int4"],
        ["process", "x.jpg", "-o", "out", "--blur", "lots"],
    ],
)
def test_wrong_flags_are_one_line_and_exit_2(argv: list[str]) -> None:
    r = run_cli(*argv)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_version_is_printed() -> None:
    r = run_cli("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("edgeportrait ")


def test_mode_choices_are_the_configs_modes() -> None:
    """--mode offers exactly portrait.mode's values, defined once in config/portrait.py."""
    from typing import get_args

    from edgeportrait.cli import build_parser
    from edgeportrait.config.portrait import MODES, PortraitConfig

    assert MODES == ("blur", "grayscale", "color", "image")
    assert get_args(PortraitConfig.model_fields["mode"].annotation) == MODES
    process = build_parser().parse_args(["process", "a.jpg", "-o", "out", "--mode", "grayscale"])
    assert process.mode == "grayscale"
    r = run_cli("process", "a.jpg", "-o", "out", "--mode", "sepia")
    assert r.returncode == 2 and all(m in r.stderr for m in MODES), r.stderr
