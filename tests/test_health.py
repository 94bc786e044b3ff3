"""Health figures: percentiles, rates, and /proc and /sys readings."""

from __future__ import annotations

from pathlib import Path

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
