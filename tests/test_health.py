"""Health figures: percentiles, rates, and /proc and /sys readings."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeportrait.health import RateMeter, SystemStats, Window, percentile


def test_percentiles_are_nearest_rank() -> None:
    """p50 and p95 of 1..100 are 50 and 95; an empty window has none."""
    w = Window()
    assert w.percentile(50) is None
    for v in range(100, 0, -1):
        w.add(float(v))
    assert (w.percentile(50), w.percentile(95)) == (50.0, 95.0)
    assert percentile([3.0], 95) == 3.0


def test_rate_meter_counts_events_per_second() -> None:
    """11 ticks 0.1 s apart are 10 per second; old ticks leave the horizon."""
    r = RateMeter(horizon_s=5)
    for i in range(11):
        r.tick(100.0 + i * 0.1)
    assert r.rate(101.0) == 10.0
    assert r.rate(200.0) == 0.0


def test_system_stats_read_rss_and_cpu_from_proc() -> None:
    """RSS comes from /proc/self/status (positive MB); CPU share is a number after the first call."""
    s = SystemStats()
    assert (s.rss_mb() or 0) > 1
    s.cpu_percent()
    sum(i * i for i in range(200_000))
    assert (s.cpu_percent() or 0) >= 0


def test_temperature_is_the_hottest_zone_or_none(tmp_path: Path) -> None:
    """Millidegrees in thermal_zone*/temp give °C; without zones it is null."""
    assert SystemStats(sys_thermal=str(tmp_path)).temperature_c() is None
    for i, t in enumerate(("41000", "55500", "garbage")):
        z = tmp_path / f"thermal_zone{i}"
        z.mkdir()
        (z / "temp").write_text(t)
    assert SystemStats(sys_thermal=str(tmp_path)).temperature_c() == 55.5


def test_a_quick_second_reader_of_cpu_share_neither_gets_tick_noise_nor_shortens_the_next_report(
    tmp_path: Path,
) -> None:
    """The health loop, /healthz and the kiosk all ask: a call soon after another measures over the earlier span."""
    (tmp_path / "self").mkdir()
    now = [100.0]

    def cpu(ticks: int) -> None:  # utime = ticks, stime = 0 (fields 14 and 15 of /proc/self/stat)
        (tmp_path / "self" / "stat").write_text("1 (python with spaces) S " + "0 " * 10 + f"{ticks} 0 0 0\n")

    s = SystemStats(proc=str(tmp_path), clock=lambda: now[0])
    ticks_per_s = s._ticks
    cpu(0)
    assert s.cpu_percent() == 0.0  # the first call has nothing to compare with
    now[0] = 110.0
    cpu(5 * ticks_per_s)
    assert s.cpu_percent() == 50.0  # 5 s of CPU in 10 s
    now[0] = 110.01
    cpu(5 * ticks_per_s + 1)
    assert s.cpu_percent() == pytest.approx(50.0, abs=0.2)  # over 100 → 110.01 s, not 10 ms
    now[0] = 120.0
    cpu(6 * ticks_per_s)
    assert s.cpu_percent() == 10.0  # the next report: 110 → 120 s, as if nobody had asked between
