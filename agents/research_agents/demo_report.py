"""What both GRPO demos share: their command line, the before/after table, the EM ratio, the file.

``make demo`` (:mod:`research_agents.demo`) and ``make demo-multihop``
(:mod:`research_agents.demo_multihop`) evaluate the same held-out questions before and after
GRPO; each evaluation's records are summarised once, by
:func:`research_agents.eval.metrics.summarise` as everywhere else, and these take the summaries.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from research_agents.eval.metrics import Summary
from research_env.data.factbook.qa import SINGLE_HOP_TYPES

__all__ = [
    "compare_line",
    "em_f1",
    "parse_args",
    "searches_per_question",
    "table",
    "write_results",
]


def parse_args(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The demo's own options, and any ``--FIELD VALUE`` GRPOConfig overrides after them.

    A bad override ends the program with the parser's one-line usage error.
    """
    from research_agents.commands.train import parse_overrides

    args, rest = parser.parse_known_args(argv)
    try:
        return args, parse_overrides(rest)
    except ValueError as e:
        parser.error(str(e))


def searches_per_question(summary: Summary, types: Sequence[str]) -> float:
    """Mean searches per question over the question types in ``types`` (0 without any)."""
    rows = [m for t, m in summary.by_type.items() if t in types]
    n = sum(m["n"] for m in rows)
    return sum(m["n"] * m["searches"] for m in rows) / n if n else 0.0


def _em(summary: Summary) -> float:
    return float(summary.metrics["em"] or 0.0)


def _f1(summary: Summary) -> float:
    return float(summary.metrics["f1"] or 0.0)


def table(rows: Sequence[tuple[str, Summary]], *, by_hops: bool = False) -> str:
    """A Markdown table: EM, F1, searches per question and EM per question type.

    Args:
        rows: The policies to compare, in order: a name and the summary of its evaluation.
        by_hops: Split searches per question into single-hop / multi-hop (the multi-hop demo)
            instead of one mean and the format-ok share.
    """
    types = sorted({t for _, s in rows for t in s.by_type})
    single = [t for t in types if t in SINGLE_HOP_TYPES]
    multi = [t for t in types if t not in SINGLE_HOP_TYPES]
    middle = ["searches/q single-hop / multi-hop"] if by_hops else ["searches/q", "format ok"]
    head = ["policy", "EM", "F1", *middle, *(f"EM {t}" for t in types)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows:
        m = s.metrics
        cells = [name, f"{_em(s):.3f}", f"{_f1(s):.3f}"]
        if by_hops:
            cells.append(
                f"{searches_per_question(s, single):.2f} / {searches_per_question(s, multi):.2f}"
            )
        else:
            cells += [f"{m['searches'] or 0.0:.2f}", f"{m['format_ok'] or 0.0:.2f}"]
        cells += [f"{s.by_type[t]['em']:.2f}" if t in s.by_type else "-" for t in types]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def em_f1(summary: Summary) -> str:
    """``EM a  F1 b`` of one evaluation."""
    return f"EM {_em(summary):.3f}  F1 {_f1(summary):.3f}"


def compare_line(before: Summary, after: Summary) -> str:
    """``EM a -> b (r x); F1 c -> d`` for the two evaluations."""
    b, a = _em(before), _em(after)
    ratio = a / b if b > 0 else float("inf") if a > 0 else 1.0
    return f"EM {b:.3f} -> {a:.3f} ({ratio:.1f}x); F1 {_f1(before):.3f} -> {_f1(after):.3f}"


def write_results(path: Path, before: Summary, after: Summary, **extra: Any) -> Path:
    """Write ``demo_results.json``: both summaries (``Summary.as_dict``) and ``extra`` fields."""
    data = {"before": before.as_dict(), "after": after.as_dict(), **extra}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
