"""Wheel build hook: compiles the compositor's C library (edgeportrait/compose/_band.c).

It is a plain shared library loaded with ctypes (no Python headers needed), so
any C compiler will do: ``cc`` on a Pi (``gcc``), ``build-essential`` on an x86
box. Without one, or if the compile fails, the build warns and goes on: the
wheel then has no ``_band.so`` and edgeportrait composes with its OpenCV path
(the same look; a 1080p compose ~2.5x slower on a 2-core AVX2 EPYC). ``EDGEPORTRAIT_BUILD_NATIVE=0``
skips the compile.

The library is written beside its source (also for ``pip install -e .``, whose
editable install imports from the tree) and shipped as a build artifact, so the
wheel is tagged for the platform it was built on (``py3-none-linux_x86_64``,
``py3-none-linux_aarch64``: it has no Python ABI in it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("edgeportrait/compose/_band.c")
LIBRARY = SOURCE.with_suffix(".so")
# -ffinite-math-only -fno-signed-zeros: lets the α clamp vectorise (its inputs are finite);
# no -march: the library runs on any CPU of the platform (x86-64 picks AVX2 at run time, see _band.c);
# -pthread: its passes share a frame's rows between threads
FLAGS = [
    "-O3",
    "-std=c99",
    "-pthread",
    "-fPIC",
    "-shared",
    "-fno-math-errno",
    "-ffinite-math-only",
    "-fno-signed-zeros",
]


class NativeBandHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        src, lib = root / SOURCE, root / LIBRARY
        if os.environ.get("EDGEPORTRAIT_BUILD_NATIVE", "").strip() == "0":
            self.app.display_info("edgeportrait: EDGEPORTRAIT_BUILD_NATIVE=0: the compositor's C library is not built")
            return
        cc = shlex.split(os.environ.get("CC", ""))
        if not cc:
            found = shutil.which("cc") or shutil.which("gcc")
            cc = [found] if found else []
        if not cc:
            self.app.display_warning(
                "edgeportrait: no C compiler (cc/gcc): the compositor will use its OpenCV path "
                "(install gcc and reinstall for the faster C library)"
            )
            return
        tmp = lib.with_name(f".{lib.name}.{os.getpid()}")
        cmd = [*cc, *FLAGS, "-o", str(tmp), str(src), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.app.display_warning(f"edgeportrait: {shlex.join(cmd)}: {e}; the compositor will use its OpenCV path")
            return
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            self.app.display_warning(
                f"edgeportrait: building the compositor's C library failed ({shlex.join(cmd)}):\n"
                f"{done.stderr.strip()}\nthe compositor will use its OpenCV path"
            )
            return
        os.replace(tmp, lib)  # a running process that loaded the old one keeps its mapping
        self.app.display_info(f"edgeportrait: built {LIBRARY}")
        build_data["artifacts"].append(LIBRARY.as_posix())
        build_data["pure_python"] = False
        # no Python ABI in it (ctypes loads it): any Python 3 on this platform
        build_data["tag"] = f"py3-none-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"
