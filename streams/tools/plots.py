"""Line plots for the reports (``nextoffer evaluate``, ``nextoffer feedback-loop``), as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def save_lines(path: Path, lines: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
               xlabel: str, ylabel: str, title: str, ylim: tuple[float, float],
               legend: str = "upper right") -> None:
    """Write one PNG with a line per (label, xs, ys, linestyle)."""
    import matplotlib
    matplotlib.use("Agg")   # files only: no display on servers and CI
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    for label, xs, ys, style in lines:
        ax.plot(xs, ys, label=label, linestyle=style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
