"""What both GRPO demos share: their command line, the before/after table, the EM ratio, the file.

``make demo`` (:mod:`research_agents.demo`) and ``make demo-multihop``
(:mod:`research_agents.demo_multihop`) evaluate the same held-out questions before and after
GRPO; each evaluation is a list of :class:`~research_env.records.EpisodeRecord`, summarised by
:func:`research_agents.eval.metrics.summarise` as everywhere else.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from research_agents.eval.metrics import Summary, summarise
from research_env.data.factbook.qa import SINGLE_HOP_TYPES
from research_env.records import EpisodeRecord

__all__ = [
    "Evaluated",
    "compare_line",
    "em_f1",
    "parse_args",
    "searches_per_question",
    "table",
    "write_results",
]

Evaluated = tuple[str, Sequence[EpisodeRecord]]
"""A table row: the policy's name and its records on the held-out questions."""


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


def searches_per_question(records: Sequence[EpisodeRecord], types: Sequence[str]) -> float:
    """Mean searches over the records whose question type is in ``types`` (0 without any)."""
    rows = [r for r in records if r.question_type in types]
    return float(sum(r.searches for r in rows)) / max(len(rows), 1)


def _em(summary: Summary) -> float:
    return float(summary.metrics["em"] or 0.0)


def table(rows: Sequence[Evaluated], *, by_hops: bool = False) -> str:
    """A Markdown table: EM, F1, searches per question and EM per question type.

    Args:
        rows: The policies to compare, in order.
        by_hops: Split searches per question into single-hop / multi-hop (the multi-hop demo)
            instead of one mean and the format-ok share.
    """
    summaries = [(name, summarise(records), records) for name, records in rows]
    types = sorted({t for _, s, _ in summaries for t in s.by_type})
    single = [t for t in types if t in SINGLE_HOP_TYPES]
    multi = [t for t in types if t not in SINGLE_HOP_TYPES]
    middle = ["searches/q single-hop / multi-hop"] if by_hops else ["searches/q", "format ok"]
    head = ["policy", "EM", "F1", *middle, *(f"EM {t}" for t in types)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s, records in summaries:
        m = s.metrics
        cells = [name, f"{_em(s):.3f}", f"{m['f1'] or 0.0:.3f}"]
        if by_hops:
            single_s = searches_per_question(records, single)
            cells.append(f"{single_s:.2f} / {searches_per_question(records, multi):.2f}")
        else:
            cells += [f"{m['searches'] or 0.0:.2f}", f"{m['format_ok'] or 0.0:.2f}"]
        cells += [f"{s.by_type[t]['em']:.2f}" if t in s.by_type else "-" for t in types]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def em_f1(records: Sequence[EpisodeRecord]) -> str:
    """``EM a  F1 b`` of one evaluation."""
    m = summarise(records).metrics
    return f"EM {m['em'] or 0.0:.3f}  F1 {m['f1'] or 0.0:.3f}"


def compare_line(before: Sequence[EpisodeRecord], after: Sequence[EpisodeRecord]) -> str:
    """``EM a -> b (r x); F1 c -> d`` for the two evaluations."""
    b, a = summarise(before), summarise(after)
    ratio = _em(a) / _em(b) if _em(b) > 0 else float("inf") if _em(a) > 0 else 1.0
    f1_b, f1_a = b.metrics["f1"] or 0.0, a.metrics["f1"] or 0.0
    return f"EM {_em(b):.3f} -> {_em(a):.3f} ({ratio:.1f}x); F1 {f1_b:.3f} -> {f1_a:.3f}"


def write_results(
    path: Path,
    before: Sequence[EpisodeRecord],
    after: Sequence[EpisodeRecord],
    **extra: Any,
) -> Path:
    """Write ``demo_results.json``: both summaries (``Summary.as_dict``) and ``extra`` fields."""
    data = {"before": summarise(before).as_dict(), "after": summarise(after).as_dict(), **extra}
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
