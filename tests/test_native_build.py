"""The wheel's build hook (hatch_build.py): the compositor's C library in the wheel where it compiles, a
working wheel without it where it does not.

Each build runs ``pip wheel`` on a copy of the project's tracked files, so the
tree under test is never written to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.slow


def _copy_project(into: Path) -> Path:
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True, capture_output=True).stdout.split(
        b"\0"
    )
    if not any(files):
        pytest.skip("not a git checkout")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            dst = into / os.fsdecode(name)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return into


def _wheel(tmp_path: Path, **env: str) -> tuple[Path, str]:
    project = _copy_project(tmp_path / "project")
    out = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("edgeportrait-*.whl")
    return wheel, done.stdout + done.stderr


@pytest.mark.skipif(CC is None, reason="needs a C compiler")
def test_the_wheel_carries_the_band_pass_and_is_tagged_for_this_platform(tmp_path: Path) -> None:
    wheel, _ = _wheel(tmp_path)
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name.endswith(f"-py3-none-{platform}.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgeportrait/compose/_band.so" in names
    assert "edgeportrait/compose/native.py" in names
    assert "edgeportrait/compose/_band.c" not in names  # the source stays in the tree


@pytest.mark.parametrize("env", [{"CC": "false"}, {"EDGEPORTRAIT_BUILD_NATIVE": "0"}], ids=["failing-compiler", "off"])
def test_without_the_band_pass_the_wheel_is_still_built(tmp_path: Path, env: dict[str, str]) -> None:
    """A compiler that fails (or the build turned off) gives a pure wheel, and says why."""
    wheel, log = _wheel(tmp_path, **env)
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert not any("_band" in n for n in names)
    assert "edgeportrait/compose/blend.py" in names
    if "CC" in env:
        assert "building the compositor's C library failed" in log and "OpenCV path" in log
    else:
        assert "EDGEPORTRAIT_BUILD_NATIVE=0" in log
