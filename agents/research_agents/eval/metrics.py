"""Per-question metrics, their means, per-type breakdowns and bootstrap confidence intervals.

Every metric is a mean over questions of a per-question value taken from the episode record
(:class:`research_env.records.EpisodeRecord`), so all of them get a confidence interval the same
way: a percentile bootstrap over questions, with the same resamples for every metric (paired),
drawn from a seeded generator so a result is reproducible to the last digit.

=========================== ===============================================================
``em``                      exact match after normalisation (``research_env.rewards``)
``f1``                      token F1, best over golden answers
``sub_em``                  a normalised golden answer occurs in the normalised prediction
``format_ok``               the response followed the template's format throughout
``answered``                the episode ended with an answer (not invalid, not out of turns)
``searches``                searches per question
``tokens``                  generated tokens per question (agents that report them only)
``answer_in_retrieval``     a golden answer appeared in some passage the agent was shown
``judge``                   an LLM judge accepted the answer (only when a judge ran)
=========================== ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from research_env.records import EpisodeRecord

__all__ = [
    "METRICS",
    "METRICS_VERSION",
    "Summary",
    "bootstrap_ci",
    "bootstrap_cis",
    "question_values",
    "summarise",
]

METRICS_VERSION = 1
"""Bump when a metric's definition or the bootstrap procedure changes (part of the protocol)."""

METRICS: tuple[str, ...] = (
    "em",
    "f1",
    "sub_em",
    "format_ok",
    "answered",
    "searches",
    "tokens",
    "answer_in_retrieval",
    "judge",
)
"""Every metric a summary can carry, in table order."""

TYPE_METRICS: tuple[str, ...] = ("em", "f1", "searches")
"""Metrics broken down per question type."""

N_RESAMPLES = 1000
"""Bootstrap resamples behind every confidence interval."""

CONFIDENCE = 0.95
"""Coverage of the intervals."""


def question_values(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The per-question value of every metric for one record (``None``: not measured).

    Args:
        record: An ``EpisodeRecord.as_dict()``, optionally with a ``judge`` verdict
            (``True`` / ``False`` / ``None``).

    Examples:
        >>> v = question_values({"em": 1.0, "f1": 1.0, "sub_em": 1.0, "format_ok": True,
        ...     "end_reason": "answer", "searches": 2, "answer_in_retrieval": True,
        ...     "stats": {"generated_tokens": 17}})
        >>> v["em"], v["answered"], v["tokens"], v["judge"]
        (1.0, 1.0, 17.0, None)
    """
    stats = record.get("stats") or {}
    tokens = stats.get("generated_tokens")
    verdict = record.get("judge")
    return {
        "em": float(record["em"]),
        "f1": float(record["f1"]),
        "sub_em": float(record["sub_em"]),
        "format_ok": float(bool(record["format_ok"])),
        "answered": float(record.get("end_reason") == "answer"),
        "searches": float(record["searches"]),
        "tokens": None if tokens is None else float(tokens),
        "answer_in_retrieval": float(bool(record["answer_in_retrieval"])),
        "judge": None if verdict is None else float(bool(verdict)),
    }


def bootstrap_cis(
    columns: Mapping[str, Sequence[float]],
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap intervals of the means of several per-question columns.

    The columns are resampled together (the same questions in every resample), so intervals
    of different metrics come from the same resamples.

    Args:
        columns: Metric -> one value per question; every column has the same length ``n``.
        n_resamples: Bootstrap resamples.
        confidence: Coverage, in (0, 1).
        seed: Seed of the resampling generator.

    Returns:
        Metric -> ``(low, high)``. With one question, or all values equal, ``low == high``.

    Raises:
        ValueError: On columns of different lengths, no questions, or a bad setting.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected >= 1, got {n_resamples!r}")
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"expected columns of one length, got {lengths}")
    n = next(iter(lengths.values()), 0)
    if n == 0:
        raise ValueError("expected at least one question, got 0")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_resamples, n))
    tail = (1 - confidence) / 2 * 100
    out: dict[str, tuple[float, float]] = {}
    for name, values in columns.items():
        arr = np.asarray(values, dtype=np.float64)
        means = arr[picks].mean(axis=1)
        low, high = np.percentile(means, [tail, 100 - tail])
        out[name] = (float(low), float(high))
    return out


def bootstrap_ci(
    values: Sequence[float],
    *,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values``.

    Examples:
        >>> bootstrap_ci([1.0, 1.0, 1.0])
        (1.0, 1.0)
        >>> low, high = bootstrap_ci([0.0, 1.0] * 50)
        >>> 0.38 < low < 0.5 < high < 0.62
        True
    """
    return bootstrap_cis({"x": values}, n_resamples=n_resamples, confidence=confidence, seed=seed)[
        "x"
    ]


@dataclass
class Summary:
    """The aggregate of one agent's records on one task."""

    n: int
    """Questions."""
    metrics: dict[str, float | None]
    """Metric -> mean over questions (``None`` when not measured, e.g. ``tokens`` of an agent
    that does not report them, ``judge`` without a judge)."""
    ci: dict[str, tuple[float, float] | None]
    """Metric -> 95% bootstrap interval of the mean (``None`` where the mean is ``None``)."""
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    """Question type -> ``{"n", "em", "f1"}``."""
    end_reasons: dict[str, int] = field(default_factory=dict)
    """How episodes ended: ``answer``, ``invalid``, ``max_turns`` -> count."""

    def as_metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """Flat metrics for a training log: every measured mean, then EM per question type.

        Examples:
            >>> s = Summary(n=2, metrics={"em": 0.5, "judge": None}, ci={},
            ...             by_type={"capital": {"n": 2.0, "em": 0.5}})
            >>> s.as_metrics()
            {'eval/em': 0.5, 'eval/em_capital': 0.5}
        """
        out = {f"{prefix}{k}": float(v) for k, v in self.metrics.items() if v is not None}
        for t, m in self.by_type.items():
            out[f"{prefix}em_{t}"] = m["em"]
        return out

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (intervals as two-element lists)."""
        return {
            "n": self.n,
            "metrics": dict(self.metrics),
            "ci": {k: None if v is None else [v[0], v[1]] for k, v in self.ci.items()},
            "by_type": {t: dict(m) for t, m in self.by_type.items()},
            "end_reasons": dict(self.end_reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """Inverse of :meth:`as_dict`."""
        return cls(
            n=int(data["n"]),
            metrics={k: None if v is None else float(v) for k, v in data["metrics"].items()},
            ci={
                k: None if v is None else (float(v[0]), float(v[1])) for k, v in data["ci"].items()
            },
            by_type={t: {k: float(x) for k, x in m.items()} for t, m in data["by_type"].items()},
            end_reasons={k: int(v) for k, v in data.get("end_reasons", {}).items()},
        )


def summarise(
    records: Sequence[EpisodeRecord | Mapping[str, Any]],
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Summary:
    """Means, bootstrap intervals, per-type EM / F1 and end reasons of ``records``.

    A metric some record lacks (``tokens``, ``judge``) is ``None`` for the whole summary:
    a mean over part of the questions would not be comparable.

    Args:
        records: :class:`EpisodeRecord` objects or their ``as_dict()`` rows (with ``judge``
            when a judge ran).
        seed: Seed of the bootstrap.
        n_resamples: Bootstrap resamples.

    Raises:
        ValueError: If there are no records.
    """
    if not records:
        raise ValueError("expected at least one record, got 0")
    dicts = [r.as_dict() if isinstance(r, EpisodeRecord) else r for r in records]
    rows = [question_values(r) for r in dicts]
    means: dict[str, float | None] = {}
    columns: dict[str, list[float]] = {}
    for name in METRICS:
        values = [row[name] for row in rows]
        if any(v is None for v in values):
            means[name] = None
            continue
        column = [float(v) for v in values if v is not None]
        columns[name] = column
        means[name] = float(np.mean(column))
    intervals = bootstrap_cis(columns, seed=seed, n_resamples=n_resamples) if columns else {}
    by_type: dict[str, dict[str, float]] = {}
    types = [str(r.get("question_type") or "?") for r in dicts]
    for typ in sorted(set(types)):
        picked = [row for row, t in zip(rows, types) if t == typ]
        by_type[typ] = {"n": float(len(picked))}
        for name in TYPE_METRICS:
            by_type[typ][name] = float(np.mean([float(row[name] or 0.0) for row in picked]))
    ends: dict[str, int] = {}
    for r in dicts:
        reason = str(r.get("end_reason"))
        ends[reason] = ends.get(reason, 0) + 1
    return Summary(
        n=len(dicts),
        metrics=means,
        ci={name: intervals.get(name) for name in METRICS},
        by_type=by_type,
        end_reasons=dict(sorted(ends.items())),
    )
