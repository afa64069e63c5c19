"""Human formatting for the dashboard.

Missing values render as a dash (or "never" for ages) rather than 0, because a monitoring screen
that shows 0% for "we have no reading" tells the reader something false.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def is_missing(value: Any) -> bool:
    """None, NaN and pandas NA/NaT all count as "no reading"."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pd.NA compare unequal to themselves
    except (TypeError, ValueError):
        return False


def fmt_bytes(value: Any) -> str:
    if is_missing(value):
        return MISSING
    n = float(value)
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in _BYTE_UNITS:
        if n < 1024 or unit == _BYTE_UNITS[-1]:
            # Three significant digits at most: "293 KiB", "1.3 MiB", "12.5 GiB".
            digits = 0 if unit == "B" or n >= 100 else 1
            return f"{sign}{n:.{digits}f} {unit}"
        n /= 1024
    return MISSING  # unreachable: the loop returns on its last unit


def fmt_rate(bytes_per_second: Any) -> str:
    return MISSING if is_missing(bytes_per_second) else f"{fmt_bytes(bytes_per_second)}/s"


def fmt_pct(value: Any, digits: int = 1) -> str:
    return MISSING if is_missing(value) else f"{float(value):.{digits}f}%"


def fmt_score(value: Any) -> str:
    return MISSING if is_missing(value) else f"{float(value):.2f}"


def fmt_number(value: Any, digits: int = 2) -> str:
    return MISSING if is_missing(value) else f"{float(value):.{digits}f}"


def fmt_duration(seconds: Any) -> str:
    """A span of time, coarse enough to read at a glance ("3h 12m", not "11520s")."""
    if is_missing(seconds):
        return MISSING
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s}s" if s and m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def fmt_age(seconds: Any) -> str:
    """How long ago something happened; "never" when it has not happened at all."""
    if is_missing(seconds):
        return "never"
    if float(seconds) < 0:
        # The reading is stamped ahead of this clock: say so instead of a negative age.
        return "just now (clock ahead)"
    return f"{fmt_duration(seconds)} ago"


def fmt_ms(ms: Any) -> str:
    if is_missing(ms):
        return MISSING
    v = float(ms)
    return f"{v:.0f} ms" if v < 1000 else f"{v / 1000:.1f} s"


# Streamlit markdown badge colours; tables use the matching cell colours in workbench.ui.tables.
SEVERITY_COLOR = {"ok": "green", "warning": "orange", "critical": "red", "unknown": "gray"}
STATUS_COLOR = {"ok": "green", "warning": "orange", "error": "red", "timeout": "red", "skipped": "gray"}


def severity_badge(severity: Any) -> str:
    """Markdown badge (`:red-badge[critical]`); emoji are avoided because many servers lack the font."""
    name = "unknown" if is_missing(severity) else str(severity)
    return f":{SEVERITY_COLOR.get(name, 'gray')}-badge[{name}]"


def join_list(value: Any, sep: str = "; ") -> str:
    """Arrays from DuckDB (lists or numpy arrays) as one readable string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    try:
        return sep.join(str(v) for v in value)
    except TypeError:
        return str(value)


def fmt_with_unit(value: Any, unit: Any) -> str:
    """A health factor's reading in its own unit ("%", "x" for ratios, "s" for ages)."""
    if unit == "%":
        return fmt_pct(value)
    if unit == "s":
        return fmt_duration(value)
    if unit == "x":
        return MISSING if is_missing(value) else f"{float(value):.2f}×"
    return fmt_number(value)
