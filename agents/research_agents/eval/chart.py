"""The leaderboard's bar chart: EM with its 95% interval and F1 per row, a panel per protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from research_agents.eval.grouping import metric, protocol_groups
from research_agents.eval.harness import SuiteResult

__all__ = ["plot_results"]


def plot_results(results: Sequence[SuiteResult], path: str | Path, title: str = "") -> Path:
    """Bar chart of EM (with 95% intervals) and F1 per row, one panel per protocol group.

    Args:
        results: Results of one suite.
        path: Where the PNG goes.
        title: Figure title.

    Raises:
        ValueError: If there are no results.
    """
    if not results:
        raise ValueError("expected at least one result to plot, got 0")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = protocol_groups(results)
    heights = [max(len(g), 1) * 0.45 + 1.0 for g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(8, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, group in zip(axes[:, 0], groups):
        labels = [r.label for r in group][::-1]
        em = [metric(r, "em") or 0.0 for r in group][::-1]
        f1 = [metric(r, "f1") or 0.0 for r in group][::-1]
        lows, highs = [], []
        for r, value in zip(group[::-1], em):
            ci = next(iter(r.tasks.values())).summary.ci.get("em") if len(r.tasks) == 1 else None
            lows.append(value - ci[0] if ci else 0.0)
            highs.append(ci[1] - value if ci else 0.0)
        y = list(range(len(group)))
        ax.barh(
            [v + 0.2 for v in y],
            em,
            height=0.4,
            xerr=[lows, highs],
            capsize=3,
            label="EM (95% CI)",
            color="#3b75af",
        )
        ax.barh([v - 0.2 for v in y], f1, height=0.4, label="F1", color="#ef8636")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(f"protocol {group[0].protocol_hash}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("score")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out
