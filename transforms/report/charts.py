"""The report's charts, drawn with matplotlib and embedded as base64 PNG.

They draw only published values: a hidden cell is a gap or a marked empty bar.
"""

from __future__ import annotations

import base64
import io
import math

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from transforms.report.model import COHORT_LABELS, MEASURES
from transforms.report.suppression import NOT_APPLICABLE, WITHHELD, derived_cell


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def line_chart(title: str, labels: list[str], series: dict[str, list[str]], ylabel: str) -> str:
    """Lines of published values; hidden values are gaps, so the chart reveals nothing more.

    The legend sits outside the plot, to the right, so it can never cover a point.
    """
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(range(len(labels)), [int(v) if v.isdigit() else math.nan for v in values],
                marker="o", label=name)
    step = max(1, math.ceil(len(labels) / 12))
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        fig.legend(loc="outside right upper", frameon=False, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def outcomes_chart(summary: list[dict]) -> str:
    """Per-person means before vs after; suppressed values are left out and marked "s".

    One row of panels per measure and one column per window, so every panel is wide enough
    for its title and its two cohort labels; one legend above all panels, outside them.
    """
    windows = sorted({s["window_days"] for s in summary})
    fig = Figure(figsize=(4.2 * len(windows) + 0.4, 1.9 * len(MEASURES) + 0.6), layout="constrained")
    axes = fig.subplots(len(MEASURES), len(windows), squeeze=False)
    for j, window in enumerate(windows):
        groups = [s for s in summary if s["window_days"] == window]
        for i, (measure, label) in enumerate(MEASURES):
            ax = axes[i][j]
            for k, (when, color) in enumerate((("before", "#9aa9bd"), ("after", "#2f5d8c"))):
                xs = [g + (k - 0.5) * 0.4 for g in range(len(groups))]
                shown = [derived_cell(s[f"{measure}_{when}_mean"],
                                      (s["n_people"], s[f"{measure}_{when}_sum"])) for s in groups]
                heights = [0.0 if v in (WITHHELD, NOT_APPLICABLE) else float(v) for v in shown]
                ax.bar(xs, heights, width=0.38, color=color, label=f"{when} the index date")
                for x, v in zip(xs, shown):
                    if v == WITHHELD:
                        ax.text(x, 0, "s", ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(groups)),
                          [COHORT_LABELS.get(s["cohort"], s["cohort"]) for s in groups], fontsize=8)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.tick_params(axis="y", labelsize=8)
            ax.margins(y=0.15)
            ax.set_title(f"{label} per person, {window} days", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], linestyle="none", marker="$s$", color="black"))
    labels.append("suppressed (not drawn)")
    fig.legend(handles, labels, loc="outside upper center", ncols=3, frameon=False, fontsize=8)
    return _png(fig)


def share_chart(title: str, labels: list[str], series: dict[str, list[str]], xlabel: str) -> str:
    """Lines of published shares ("37.5%"); withheld or n/a shares are gaps."""
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(range(len(labels)), [float(v[:-1]) if v.endswith("%") else math.nan for v in values],
                marker="o", label=name)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("% of those with a known status", fontsize=9)
    ax.set_ylim(0, 100)
    fig.legend(loc="outside right upper", frameon=False, fontsize=8)
    ax.set_title(title, fontsize=10)
    return _png(fig)
