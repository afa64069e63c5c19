"""Rates from monotonic counters kept in the collector cursor, so a restart does not reset them."""

from __future__ import annotations


def counter_rate(prev: float | None, cur: float, dt_s: float | None) -> float | None:
    """Per-second rate; None when there is no previous reading or the counter wrapped/reset."""
    if prev is None or dt_s is None or dt_s <= 0 or cur < prev:
        return None
    return (cur - prev) / dt_s


def busy_pct(prev: tuple[int, int] | None, cur: tuple[int, int]) -> float | None:
    """CPU busy % between two (busy, total) jiffy readings."""
    if prev is None:
        return None
    d_busy, d_total = cur[0] - prev[0], cur[1] - prev[1]
    if d_total <= 0 or d_busy < 0:
        return None
    return max(0.0, min(100.0, 100.0 * d_busy / d_total))
