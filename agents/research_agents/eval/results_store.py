"""Results on disk: ``<results_dir>/<suite>/<slug>.json``, records beside them as ``.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

from research_agents.eval.harness import SuiteResult

__all__ = ["load_results", "result_path", "save_result"]


def result_path(results_dir: str | Path, suite: str, slug: str) -> Path:
    """Where the result of row ``slug`` of ``suite`` is stored."""
    return Path(results_dir) / suite / f"{slug}.json"


def save_result(result: SuiteResult, results_dir: str | Path) -> Path:
    """Write ``result`` (JSON) and its records (JSONL) under ``results_dir``; return the JSON."""
    path = result_path(results_dir, result.suite, result.slug)
    result.write(path)
    if any(t.records for t in result.tasks.values()):
        result.write_records(path.with_suffix(".jsonl"))
    return path


def load_results(results_dir: str | Path, suite: str | None = None) -> list[SuiteResult]:
    """Every stored result (of ``suite``, or of all suites), in path order.

    Raises:
        ValueError: If a JSON file there is not a result (naming the file).
    """
    root = Path(results_dir)
    folders = [root / suite] if suite else sorted(p for p in root.glob("*") if p.is_dir())
    out: list[SuiteResult] = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
            out.append(SuiteResult.from_json(data, where=str(path)))
    return out
