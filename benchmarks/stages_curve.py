"""Plot the training curves of a recipe's stages end to end (train EM, searches, bridge recall).

Usage::

    python benchmarks/stages_curve.py runs/factbook-smollm2-multihop-stage1 \
        runs/factbook-smollm2-multihop --label B=retrieval-credit:runs/other \
        --out docs/img/multihop_two_stages.png

Each positional run continues the step count of the one before it; ``--label NAME:RUN``
adds a run drawn from the end of the first stage, for an ablation of a later stage. Reads each
run's ``metrics.jsonl`` only. The third panel, ``env/bridge_recall`` (the share of the entities
a question hides that the queries named), shows the steps that logged it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _rows(run: str) -> list[dict[str, Any]]:
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise SystemExit(f"stages_curve: no metrics.jsonl in {run}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """Draw the figure; print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="the stages' output folders, in order")
    parser.add_argument("--label", action="append", default=[], help="NAME:RUN, a later stage")
    parser.add_argument("--out", default="stages.png")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))

    drawn = 0

    def draw(steps: list[int], rows: list[dict[str, Any]], style: str, name: str) -> None:
        nonlocal drawn
        color, drawn = f"C{drawn}", drawn + 1  # one colour per run on every panel
        em = [r["reward/em"] for r in rows]
        axes[0].plot(steps, em, style, color=color, label=f"{name}: train EM")
        searches = [r["env/searches_per_episode"] for r in rows]
        axes[1].plot(steps, searches, style, color=color, label=name)
        key = "env/bridge_recall"
        recall = [(s, r[key]) for s, r in zip(steps, rows) if key in r]
        if recall:
            axes[2].plot(*zip(*recall), style, color=color, label=name)

    offset = 0
    first_end = 0
    for i, run in enumerate(args.runs):
        rows = _rows(run)
        steps = [offset + r["step"] for r in rows]
        draw(steps, rows, "-", Path(run).name)
        offset = steps[-1]
        if i == 0:
            first_end = offset
        axes[0].axvline(offset, color="grey", lw=0.5)
    for spec in args.label:
        name, _, run = spec.partition(":")
        rows = _rows(run)
        draw([first_end + r["step"] for r in rows], rows, "--", name)
    axes[0].set_title("train EM per step (rollouts, T = 0.7)")
    axes[1].set_title("searches per episode")
    axes[2].set_title("hidden entity named in a query (bridge recall)")
    for ax in axes:
        ax.set_xlabel("step (stages end to end)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
