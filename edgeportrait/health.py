"""The health report on ``B/health``: rolling percentiles and what /proc and /sys say.

Figures come from the stages (camera stats, inference and pipeline timings);
this module keeps the rolling windows and reads the process and board figures
(CPU share, resident memory, SoC temperature) without extra dependencies.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Enough samples for a stable p95 while still following a change within a
# few seconds at stream rates.
WINDOW = 300


def percentile(values: list[float] | deque[float], q: float) -> float | None:
    """Nearest-rank percentile (``None`` for no values)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return round(ordered[rank - 1], 2)


class Window:
    """A rolling window of samples with percentiles (thread-safe)."""

    def __init__(self, size: int = WINDOW) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the window (``None`` while empty)."""
        with self._lock:
            values = list(self._values)
        return percentile(values, q)

    def __len__(self) -> int:
        return len(self._values)


class RateMeter:
    """Events per second over the last few seconds."""

    def __init__(self, horizon_s: float = 5.0) -> None:
        self._times: deque[float] = deque()
        self._horizon = horizon_s
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._horizon:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            span = now - self._times[0]
        return round((n - 1) / span, 2) if span > 0 else 0.0


class SystemStats:
    """CPU share over the last report's span, RSS and temperature, from /proc and /sys."""

    # a CPU share over less than this is mostly clock-tick noise (the counters tick every 10 ms)
    MIN_WINDOW_S = 1.0

    def __init__(
        self,
        proc: str = "/proc",
        sys_thermal: str = "/sys/class/thermal",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._proc = proc
        self._thermal = sys_thermal
        self._clock = clock
        self._lock = threading.Lock()
        # (when, CPU seconds) of the last two calls at least MIN_WINDOW_S apart
        self._samples: deque[tuple[float, float]] = deque(maxlen=2)
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _cpu_seconds(self) -> float | None:
        try:
            with open(f"{self._proc}/self/stat") as f:
                stat = f.read()
        except OSError:
            return None
        # The command name (field 2) may contain spaces; fields after ")" are fixed.
        fields = stat.rsplit(")", 1)[-1].split()
        try:
            return (int(fields[11]) + int(fields[12])) / self._ticks
        except (IndexError, ValueError):
            return None

    def cpu_percent(self) -> float | None:
        """Share of one core this process used since the previous call (100 = one core busy).

        Several readers ask (the health loop, ``/healthz``, the kiosk's status): a
        call less than ``MIN_WINDOW_S`` after the previous one measures from the
        call before that, so a quick second reader gets the share over a real
        span instead of a few clock ticks, and does not shorten the next report's.
        """
        cpu = self._cpu_seconds()
        now = self._clock()
        if cpu is None:
            return None
        with self._lock:
            if not self._samples:
                self._samples.append((now, cpu))
                return 0.0
            if now - self._samples[-1][0] >= self.MIN_WINDOW_S:
                since, base = self._samples[-1]
                self._samples.append((now, cpu))  # the base of the next call
            else:
                since, base = self._samples[0]  # the sample before the newest
        if now <= since:
            return 0.0
        return round(100.0 * (cpu - base) / (now - since), 1)

    def rss_mb(self) -> float | None:
        try:
            with open(f"{self._proc}/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            return None
        return None

    def temperature_c(self) -> float | None:
        """The hottest thermal zone (SoC on a Pi), or ``None`` where the board has none."""
        temps = []
        for path in glob.glob(f"{self._thermal}/thermal_zone*/temp"):
            try:
                with open(path) as f:
                    temps.append(int(f.read().strip()) / 1000.0)
            except (OSError, ValueError):
                continue
        return round(max(temps), 1) if temps else None

    def snapshot(self) -> dict[str, float | None]:
        return {"cpu_percent": self.cpu_percent(), "rss_mb": self.rss_mb(), "temperature_c": self.temperature_c()}
