"""What every benchmark prints with its figures: the CPU, its core count and the ISA flags that matter.

An INT8 or speed figure holds only for the ISA it was measured on (AVX2 alone,
AVX-512 with VNNI, AMX...), so each benchmark names it beside its results.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FLAGS = {"avx2", "avx512_vnni", "avx_vnni", "amx_int8"}


def compositor_path(daemon_log: Path) -> str:
    """Which compositor path a daemon ran, from its log's ``compositor: …`` line.

    A checkout whose ``_band.c`` changed after the last ``pip install -e .``
    composes on the OpenCV path (by design); a figure taken so measures that
    path, so the daemon benchmarks print what ran.
    """
    try:
        lines = daemon_log.read_text(errors="replace").splitlines()
    except OSError:
        return "unknown (no daemon log)"
    found = [ln.split("compositor: ", 1)[1] for ln in lines if "compositor: " in ln]
    return found[-1] if found else "unknown (not in the daemon log)"


def machine() -> str:
    """CPU model, core count and the ISA flags that matter for INT8 inference."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = sorted(flags & FLAGS) or ["none of avx2/vnni/amx"]
    return f"{model}, {os.cpu_count()} cores, {' '.join(isa)}"


def one_blas_thread() -> None:
    """Re-run this script with numpy's OpenBLAS on one thread, as ``edgeportrait``'s CLI runs it.

    OpenBLAS starts a thread per core when numpy is imported and they spin
    waiting for work: in a timing loop on two cores they take a share of the
    second core from whatever is measured there (OpenCV's threads, the C
    passes'). The variable is read when numpy loads, so the process starts
    again with it set; a value the user set is kept.
    """
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.execv(sys.executable, [sys.executable, *sys.argv])
