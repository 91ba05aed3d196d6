"""Draw the reward / EM curves of a run as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(records: list[dict[str, Any]], path: str | Path, title: str = "GRPO") -> Path:
    """Plot training reward (left), and train / held-out EM and F1 per step (right).

    Args:
        records: Rows of ``metrics.jsonl``.
        path: Where the PNG goes.
        title: Figure title.

    Returns:
        The PNG's path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        return [p[0] for p in pts], [float(p[1]) for p in pts]

    # Two panels: the training reward alone (with reward="f1" it equals train F1, and one line
    # would hide the other), then EM and F1, train as lines and held-out as marked points.
    fig, (ax_r, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    xs, ys = series("reward/mean")
    if xs:
        ax_r.plot(xs, ys, "-", color="tab:blue", label="train reward")
    ax_r.set_title("training reward")
    for key, label, style, color in (
        ("reward/em", "train EM", "-", "tab:orange"),
        ("reward/f1", "train F1", ":", "tab:green"),
        ("eval/em", "held-out EM", "o-", "tab:red"),
        ("eval/f1", "held-out F1", "s--", "tab:purple"),
    ):
        xs, ys = series(key)
        if xs:
            ax_m.plot(xs, ys, style, color=color, label=label)
    if not series("eval/em")[0]:
        ax_m.text(
            0.98,
            0.02,
            "no held-out points: set eval_every",
            transform=ax_m.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.4",
        )
    ax_m.set_title("EM and F1")
    for ax in (ax_r, ax_m):
        ax.set_xlabel("step")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
