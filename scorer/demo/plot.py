"""The demo report's PNG: accuracy, latency and throughput over time, with the swaps and the drift marked.

matplotlib with the Agg backend (no display needed); imported only when a PNG is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scorer.demo.report import Joined, Swap

_COLORS = ("#d62728", "#1f77b4", "#9467bd", "#8c564b")
_REST = "#2ca02c"
_GAP = 1.0
"""Seconds without events after which a line is broken (the demo pauses between the two halves)."""


def _rolling(x: np.ndarray, values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean of ``values`` over ``window`` points, placed at the window's last x."""
    if values.size < window:
        return np.array([]), np.array([])
    sums = np.cumsum(np.concatenate([[0.0], values.astype(np.float64)]))
    means = (sums[window:] - sums[:-window]) / window
    return x[window - 1:], means


def _break_gaps(x: np.ndarray, y: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where x jumps by more than ``gap`` so a pause in the stream is not drawn as a straight line."""
    if x.size < 2:
        return x, y
    cut = np.flatnonzero(np.diff(x) > gap) + 1
    return np.insert(x.astype(np.float64), cut, np.nan), np.insert(y.astype(np.float64), cut, np.nan)


class _Timeline:
    """Seconds since the first event, with long pauses cut down to ``keep`` seconds (and remembered for labels).

    The demo pauses the stream while it trains and publishes v2; drawn to scale, that pause would squeeze the
    streaming minutes into the edges of the chart.
    """

    def __init__(self, sent: np.ndarray, t0: float, cut: float = 3.0, keep: float = 1.5) -> None:
        times = np.sort(sent[np.isfinite(sent)]) - t0
        jumps = np.flatnonzero(np.diff(times) > cut) if times.size > 1 else np.array([], dtype=np.int64)
        self.t0, self.keep = t0, keep
        self.gaps = [(float(times[i]), float(times[i + 1])) for i in jumps]

    def __call__(self, epoch: np.ndarray | float) -> np.ndarray:
        given = np.asarray(epoch, dtype=np.float64)
        t = np.atleast_1d(given) - self.t0
        out = t.copy()
        for start, end in self.gaps:
            inside = (t > start) & (t < end)
            out[inside] -= np.minimum(t[inside] - start, end - start) * (1 - self.keep / (end - start))
            out[t >= end] -= (end - start) - self.keep
        return out.reshape(given.shape)

    def bands(self) -> list[tuple[float, float, float]]:
        """(drawn start, drawn end, real length) of each shortened pause."""
        return [(float(self(start + self.t0)), float(self(start + self.t0)) + self.keep, end - start)
                for start, end in self.gaps]


def _window(n: int) -> int:
    return int(min(500, max(50, n // 25)))


def _binned(x: np.ndarray, values: np.ndarray, width: float) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Per-bin p50/p99 of ``values`` and counts, bins of ``width`` seconds (empty bins left out)."""
    if x.size == 0:
        return np.array([]), {"p50": np.array([]), "p99": np.array([])}, np.array([])
    bins = np.floor(x / width).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, values = bins[order], values[order]
    edges = np.flatnonzero(np.diff(bins)) + 1
    groups = np.split(values, edges)
    keys = bins[np.concatenate([[0], edges])]
    centers = (keys + 0.5) * width
    p50 = np.array([np.percentile(group, 50) for group in groups])
    p99 = np.array([np.percentile(group, 99) for group in groups])
    counts = np.array([group.size for group in groups]) / width
    return centers, {"p50": p50, "p99": p99}, counts


def plot_report(joined: Joined, summary: Mapping[str, Any], swaps: Sequence[Swap], path: str | Path,
                title: str | None = None) -> Path:
    """Draw the three panels and save them to ``path`` (PNG); return the path.

    The time axis is when predictions were *scored*: a swap takes effect at a wall-clock moment, so accuracy
    per scoring time lines up with the swap marks even when the worker runs behind the sender.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scored_ok = np.isfinite(joined.scored)
    sent_ok = np.isfinite(joined.sent)
    activity = np.concatenate([joined.scored[scored_ok], joined.sent[sent_ok]])
    t0 = float(activity.min()) if activity.size else 0.0
    timeline = _Timeline(activity, t0)
    t = timeline(joined.scored)

    fig, (ax_acc, ax_lat, ax_rate) = plt.subplots(3, 1, figsize=(13, 11), sharex=True,
                                                   gridspec_kw={"height_ratios": [3, 2, 1.4]})
    stream_events = summary.get("stream_events", joined.index.size)
    fig.suptitle(title or f"scorer demo: {stream_events:,} ride events, {len(summary.get('metrics', {}))} cities, "
                 f"{len(swaps)} live model swaps", fontsize=15, fontweight="bold")

    # 1. rolling accuracy: each swapped city alone, every other city together.
    swapped = list(dict.fromkeys(swap.segment for swap in swaps))
    drift = summary.get("drift") or {}
    order = np.argsort(t, kind="stable")
    series = [(city, joined.segments == city, _COLORS[i % len(_COLORS)]) for i, city in enumerate(swapped)]
    if drift.get("city") and drift["city"] not in swapped:
        series.insert(0, (drift["city"], joined.segments == drift["city"], _COLORS[-1]))
    rest = ~np.isin(joined.segments, [name for name, _, _ in series])
    series.append(("other cities", rest, _REST))
    for name, mask, color in series:
        chosen = order[mask[order] & scored_ok[order]]
        window = _window(chosen.size)
        x, y = _break_gaps(*_rolling(t[chosen], joined.correct[chosen], window), _GAP)
        drifted = ", drifted" if name == drift.get("city") else ""
        ax_acc.plot(x, y, color=color, linewidth=2.0 if name != "other cities" else 1.6,
                    label=f"{name}{drifted} (rolling {window} events)")
    ax_acc.set_ylabel("accuracy against labels")
    ax_acc.set_ylim(0.0, 1.0)
    ax_acc.grid(True, alpha=0.3)
    ax_acc.set_title("Prediction accuracy over time (predicted class vs. the ride's real outcome)", loc="left")

    # 2. end-to-end latency of the predictions scored in each half second.
    latency = joined.latency_ms
    ok = sent_ok & scored_ok & np.isfinite(latency)
    if ok.any():
        centers, pct, _ = _binned(t[ok], latency[ok], 0.5)
        for key, color in (("p50", "#1f77b4"), ("p99", "#ff7f0e")):
            x, y = _break_gaps(centers, pct[key], _GAP)
            ax_lat.plot(x, y, color=color, linewidth=1.6, marker=".", markersize=4, label=key)
        ax_lat.set_yscale("log")
        ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        low, high = ax_lat.get_ylim()
        crowded = high / max(low, 1e-9) > 30  # more than ~1.5 decades: label only 2 and 5 between the powers of 10
        ax_lat.yaxis.set_minor_formatter(FuncFormatter(
            lambda value, _: "" if crowded and f"{value:g}"[0] not in "25" else f"{value:g}"))
        ax_lat.legend(loc="upper right", fontsize=9)
    else:
        ax_lat.text(0.5, 0.5, "no send times (input topic not read)", transform=ax_lat.transAxes, ha="center")
    ax_lat.set_ylabel("end-to-end latency (ms)")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.set_title("Latency: prediction scored_at minus the event's Kafka send time (per 0.5 s)", loc="left")

    # 3. throughput: events sent and predictions made per second (a gap between them is a backlog).
    width = 0.5
    for times, label, color in ((joined.sent[sent_ok], "events sent / s", "#9467bd"),
                                (joined.scored[scored_ok], "predictions / s", "#333333")):
        if times.size:
            x = timeline(times)
            bins = np.arange(np.floor(x.min()), x.max() + width, width)
            counts, edges = np.histogram(x, bins=bins)
            ax_rate.step(edges[:-1], counts / width, where="post", color=color, linewidth=1.2, label=label)
    ax_rate.set_ylabel("per second")
    shortened = " (pauses shortened, in grey)" if timeline.gaps else ""
    ax_rate.set_xlabel(f"seconds since the first event was sent{shortened}")
    ax_rate.grid(True, alpha=0.3)
    ax_rate.legend(loc="upper right", fontsize=9)

    # Swap moments and the drift onset on every panel.
    for i, swap in enumerate(swaps):
        color = _COLORS[swapped.index(swap.segment) % len(_COLORS)]
        x = float(timeline(swap.at))
        for ax in (ax_acc, ax_lat, ax_rate):
            ax.axvline(x, color=color, linestyle="--", linewidth=1.5)
        ax_acc.annotate(f"swap {swap.segment} -> v{swap.version}\n({swap.method})", xy=(x, 0.16 - 0.12 * (i % 2)),
                        xytext=(4, 0), textcoords="offset points", color=color, fontsize=9, fontweight="bold")
    if drift.get("city") and drift.get("first_index") is not None:
        after = (joined.segments == drift["city"]) & (joined.index >= int(drift["first_index"])) & scored_ok
        if after.any():
            x = float(np.min(t[after]))
            for ax in (ax_acc, ax_lat, ax_rate):
                ax.axvline(x, color="#444444", linestyle=":", linewidth=1.5)
            ax_acc.annotate(f"{drift['city']} drift begins", xy=(x, 0.95), xytext=(4, 0), textcoords="offset points",
                            color="#444444", fontsize=9, fontweight="bold")
    for start, end, length in timeline.bands():
        for ax in (ax_acc, ax_lat, ax_rate):
            ax.axvspan(start, end, color="#bbbbbb", alpha=0.5, linewidth=0)
        ax_acc.text((start + end) / 2, 0.6, f"no events sent for {length:.0f} s", rotation=90, ha="center",
                    va="center", fontsize=8, color="#444444",
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    ax_acc.legend(loc="lower left", fontsize=9, framealpha=0.95)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
