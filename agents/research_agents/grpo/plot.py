"""Draw the reward / EM curves of a run as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(records: list[dict[str, Any]], path: str | Path, title: str = "GRPO") -> Path:
    """Plot training reward, training EM/F1 and (if logged) held-out EM per step.

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

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (
        ("reward/mean", "train reward", "-"),
        ("reward/em", "train EM", "-"),
        ("reward/f1", "train F1", ":"),
        ("eval/em", "held-out EM", "o-"),
        ("eval/f1", "held-out F1", "s--"),
    ):
        xs, ys = series(key)
        if xs:
            ax.plot(xs, ys, style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("score")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
