"""``model.precision: auto``: INT8 where the device runs it fast, FP32 where it does not.

INT8 pays only where the hardware multiplies 8-bit numbers natively: Intel's
NPU and GPU, x86 CPUs with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX
(``amx_int8``), and 64-bit ARM CPUs with the dot-product instructions
(``asimddp``). On a CPU without them OpenVINO emulates 8-bit products with
16-bit ones: no faster than FP32 (measured on a 2-core AVX2-only AMD EPYC,
models/README.md), and further from the reference runtime's masks. The choice is
made once per device the Segmenter compiles for, from what OpenVINO and the CPU
report, and the reason is kept for the start-up log, health and results.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path

X86_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")
ARM_INT8_FLAGS = ("asimddp",)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The feature flags of the first CPU (x86 ``flags``, ARM ``Features``); empty where unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_int8(flags: set[str], machine: str | None = None) -> tuple[bool, str]:
    """Whether this CPU runs INT8 fast, and the flags that say so (or that are missing)."""
    machine = (machine or platform.machine()).lower()
    wanted = ARM_INT8_FLAGS if machine in ("aarch64", "arm64") else X86_INT8_FLAGS
    have = [f for f in wanted if f in flags]
    if have:
        return True, f"CPU has {'/'.join(have)}"
    return False, f"CPU has no {'/'.join(wanted)}"


def choose(
    requested: str,
    device: str,
    available: Iterable[str],
    flags: set[str] | None = None,
    machine: str | None = None,
) -> tuple[str, str]:
    """``(precision, reason)`` for compiling on ``device``.

    ``requested`` is the config's ``model.precision``: ``int8`` and ``fp32``
    are kept as asked; ``auto`` becomes INT8 on NPU and GPU, and on a CPU
    that runs INT8 natively, else FP32. For ``AUTO`` (OpenVINO picks the
    device) the GPU or NPU it would pick decides if there is one, else the CPU.
    """
    if requested != "auto":
        return requested, f"model.precision is {requested}"
    accel = [d for d in available if d.split(".")[0] in ("NPU", "GPU")]
    if device in ("NPU", "GPU"):
        return "int8", f"auto: {device} runs INT8 natively"
    if device == "AUTO" and accel:
        return "int8", f"auto: AUTO runs on {accel[0]}, which runs INT8 natively"
    fast, why = cpu_int8(cpu_flags() if flags is None else flags, machine)
    if fast:
        return "int8", f"auto: {why}, so INT8 is faster than FP32"
    return "fp32", f"auto: {why}, so INT8 is no faster than FP32 there and FP32 runs"
