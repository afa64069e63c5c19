"""Plotly figures built from view DataFrames.

Builders only draw what they are given: no resampling, no gap filling, no smoothing, so a chart
never shows a value that no view returned. Time axes are UTC, as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

from workbench.views.health import OK_AT, WARN_AT

HEIGHT = 260
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


XRange = tuple[datetime, datetime] | None

# Agent states (ntm) in the colours a person reads at a glance: working, resting, needs someone, broken.
STATE_COLORS = {"active": "#2ca02c", "idle": "#9e9e9e", "waiting": "#ff7f0e", "error": "#d62728",
                "unknown": "#c7c7c7"}


def _with_breaks(x: pd.Series, y: pd.Series, factor: float = 3.0) -> tuple[list, list]:
    """Insert a break where samples stop for longer than `factor` times the usual step.

    Plotly joins consecutive points with a straight line; across a silent machine's outage that
    line would draw readings nobody took.
    """
    xs, ys = list(x), list(y)
    if len(xs) < 3:
        return xs, ys
    steps = pd.Series(pd.to_datetime(pd.Series(xs))).diff().dropna()
    usual = steps.median()
    out_x, out_y = [xs[0]], [ys[0]]
    for i in range(1, len(xs)):
        if steps.iloc[i - 1] > usual * factor:
            out_x.append(xs[i - 1] + (xs[i] - xs[i - 1]) / 2)
            out_y.append(None)
        out_x.append(xs[i])
        out_y.append(ys[i])
    return out_x, out_y


def _base(title: str, y_title: str, y_range: tuple[float, float] | None = None,
          x_range: XRange = None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=HEIGHT, margin=_MARGIN, hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        xaxis_title=None, yaxis_title=y_title,
    )
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    if x_range is not None:
        # The whole chosen window, so a gap before the first sample reads as "no data", not as a zoom.
        fig.update_xaxes(range=list(x_range))
    return fig


def time_series(df: pd.DataFrame, columns: Mapping[str, str], title: str, y_title: str = "",
                y_range: tuple[float, float] | None = None, x: str = "ts",
                hover_format: str = ".1f", threshold: float | None = None,
                x_range: XRange = None) -> go.Figure:
    """One line per column of `df` (column name → legend label)."""
    fig = _base(title, y_title, y_range, x_range)
    for col, label in columns.items():
        xs, ys = _with_breaks(df[x], df[col])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=label, mode="lines",
            hovertemplate=f"%{{y:{hover_format}}}<extra>{label}</extra>",
        ))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dot", line_color="#d62728", opacity=0.6)
    fig.update_layout(showlegend=len(columns) > 1)
    return fig


def percent_series(df: pd.DataFrame, column: str, title: str, warn_at: float | None = None,
                   x_range: XRange = None) -> go.Figure:
    return time_series(df, {column: title}, title, "%", y_range=(0, 100), threshold=warn_at, x_range=x_range)


def grouped_series(df: pd.DataFrame, group: str, value: str, title: str, y_title: str = "",
                   y_range: tuple[float, float] | None = None, x: str = "ts",
                   threshold: float | None = None, x_range: XRange = None) -> go.Figure:
    """One line per value of `group` in a long DataFrame (e.g. one line per filesystem mount)."""
    fig = _base(title, y_title, y_range, x_range)
    for name, part in df.groupby(group, sort=True):
        xs, ys = _with_breaks(part[x], part[value])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=str(name), mode="lines",
            hovertemplate=f"%{{y:.1f}}<extra>{name}</extra>",
        ))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dot", line_color="#d62728", opacity=0.6)
    return fig


def network_series(df: pd.DataFrame, title: str = "Network", x_range: XRange = None) -> go.Figure:
    """Receive and transmit rates in bytes per second (SI-prefixed axis)."""
    fig = _base(title, "bytes/s", x_range=x_range)
    for col, label in (("net_rx_bps", "rx"), ("net_tx_bps", "tx")):
        xs, ys = _with_breaks(df["ts"], df[col])
        fig.add_trace(go.Scatter(x=xs, y=ys, name=label, mode="lines",
                                 hovertemplate=f"%{{y:.3s}}B/s<extra>{label}</extra>"))
    fig.update_yaxes(tickformat=".2s", rangemode="tozero")
    return fig


def factor_scores(factors: pd.DataFrame, title: str = "Health factors") -> go.Figure:
    """Horizontal bars of factor scores in [0, 1]; factors without data are left out, not drawn as 0."""
    scored = factors.dropna(subset=["score"])
    colors = ["#2ca02c" if s >= OK_AT else "#ff7f0e" if s >= WARN_AT else "#d62728" for s in scored["score"]]
    fig = _base(title, "")
    fig.add_trace(go.Bar(x=scored["score"], y=scored["factor"], orientation="h", marker_color=colors,
                         text=scored["detail"], textposition="inside", insidetextanchor="start",
                         hovertemplate="%{y}: %{x:.2f}<extra></extra>"))
    fig.update_layout(height=max(160, 40 * len(scored) + 60), xaxis={"range": [0, 1]}, showlegend=False)
    return fig


def stacked_bars(df: pd.DataFrame, x: str, stack: str, value: str, title: str, y_title: str = "",
                 colors: Mapping[str, str] | None = None, x_range: XRange = None,
                 horizontal: bool = False, bucket_seconds: int | None = None) -> go.Figure:
    """One bar segment per value of `stack` at each `x` (counts per hour, agents per state ...).

    Only the (x, stack) pairs present in `df` are drawn: an hour without events has no bar, not a 0.
    `bucket_seconds`: on a time axis, each bar spans its bucket (left-aligned, as the views bucket),
    instead of Plotly stretching sparse bars over the gaps between them.
    """
    fig = _base(title, y_title, x_range=x_range)
    for name, part in df.groupby(stack, sort=True):
        label = str(name)
        color = (colors or {}).get(label)
        if horizontal:
            fig.add_trace(go.Bar(y=part[x], x=part[value], name=label, orientation="h", marker_color=color,
                                 hovertemplate=f"%{{y}}: %{{x}}<extra>{label}</extra>"))
        else:
            width = None if bucket_seconds is None else [bucket_seconds * 1000] * len(part)
            fig.add_trace(go.Bar(x=part[x], y=part[value], name=label, marker_color=color, width=width,
                                 offset=0 if width else None, hovertemplate=f"%{{y}}<extra>{label}</extra>"))
    # Legend to the right of the plot: over it, next to the title, the stack names would collide with it.
    fig.update_layout(barmode="stack", hovermode="closest" if horizontal else "x unified",
                      legend={"orientation": "v", "yanchor": "top", "y": 1, "xanchor": "left", "x": 1.02})
    if horizontal:
        fig.update_layout(height=max(HEIGHT // 2, 40 * df[x].nunique() + 90), xaxis_title=y_title, yaxis_title=None)
    return fig


def usage_bars(df: pd.DataFrame, label: str, value: str, title: str, text: str | None = None) -> go.Figure:
    """Horizontal bars of a percentage in [0, 100] per row, coloured by how close each is to its limit.

    Rows without a figure are left out rather than drawn as an empty (0%) bar.
    """
    scored = df.dropna(subset=[value])
    colors = ["#d62728" if v >= 90 else "#ff7f0e" if v >= 70 else "#2ca02c" for v in scored[value]]
    fig = _base(title, "")
    fig.add_trace(go.Bar(x=scored[value], y=scored[label], orientation="h", marker_color=colors,
                         text=None if text is None else scored[text], textposition="inside",
                         insidetextanchor="start", hovertemplate="%{y}: %{x:.0f}%<extra></extra>"))
    fig.update_layout(height=max(160, 34 * len(scored) + 70),
                      xaxis={"range": [0, 100], "ticksuffix": "%", "tickvals": [0, 25, 50, 75, 100]},
                      yaxis={"autorange": "reversed"}, showlegend=False, hovermode="closest")
    return fig


def snapshot_series(df: pd.DataFrame, group: str, value: str, title: str, y_title: str = "",
                    y_range: tuple[float, float] | None = None, x: str = "ts", threshold: float | None = None,
                    x_range: XRange = None) -> go.Figure:
    """One line per `group` value with a marker at every reading, for snapshots polled minutes apart.

    Unlike `grouped_series`, a series with a single reading is still visible (as its marker), and the
    legend sits under the plot because group names here (account · window) are long.
    """
    fig = _base(title, y_title, y_range, x_range)
    for name, part in df.groupby(group, sort=True):
        xs, ys = _with_breaks(part[x], part[value])
        fig.add_trace(go.Scatter(x=xs, y=ys, name=str(name), mode="lines+markers", marker={"size": 6},
                                 hovertemplate=f"%{{y:.1f}}<extra>{name}</extra>"))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dot", line_color="#d62728", opacity=0.6)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0},
                      height=HEIGHT + 20 * max(0, df[group].nunique() - 2), showlegend=True)
    return fig
