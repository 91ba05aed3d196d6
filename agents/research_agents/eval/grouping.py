"""Which stored results may share a table: equal protocol hashes, and how two protocols differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from research_agents.eval.harness import SuiteResult

__all__ = ["metric", "protocol_differences", "protocol_groups", "ranked"]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def protocol_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The dotted names of the protocol fields where ``a`` and ``b`` differ.

    Examples:
        >>> protocol_differences({"env": {"top_k": 3, "max_turns": 2}},
        ...                      {"env": {"top_k": 5, "max_turns": 2}})
        ['env.top_k']
    """
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def protocol_groups(results: Sequence[SuiteResult]) -> list[list[SuiteResult]]:
    """Rows grouped by protocol hash; the biggest group first, then by hash."""
    by_hash: dict[str, list[SuiteResult]] = {}
    for r in results:
        by_hash.setdefault(r.protocol_hash, []).append(r)
    groups = sorted(by_hash.values(), key=lambda g: (-len(g), g[0].protocol_hash))
    return [ranked(g) for g in groups]


def metric(r: SuiteResult, name: str) -> float | None:
    """Metric ``name`` of a row, averaged over its tasks (``None`` if a task lacks it)."""
    values = [t.summary.metrics.get(name) for t in r.tasks.values()]
    if not values or any(v is None for v in values):
        return None
    return sum(float(v) for v in values if v is not None) / len(values)


def ranked(group: list[SuiteResult]) -> list[SuiteResult]:
    """Rows by EM, then F1 (both descending), then label."""

    def key(r: SuiteResult) -> tuple[float, float, str]:
        return (-(metric(r, "em") or 0.0), -(metric(r, "f1") or 0.0), r.label)

    return sorted(group, key=key)
