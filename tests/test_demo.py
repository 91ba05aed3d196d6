"""The demo's mechanics with the tiny random model (``make demo`` runs it with SmolLM2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from research_agents.demo import main


def test_demo_runs_fixed_steps_and_prints_before_after_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(
        [
            "--preset",
            "tiny",
            "--eval-size",
            "4",
            "--steps",
            "2",
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "| policy | EM | F1 | searches/q | format ok |" in out
    # No wall-clock cap by default: the step count alone ends training.
    assert "zero-shot" in out and "+ GRPO, 2 steps" in out and "trained 2 steps in" in out
    saved = json.loads((tmp_path / "demo_results.json").read_text())
    assert (
        saved["steps"] == 2
        and saved["config"]["time_budget_s"] is None
        and saved["before"]["n"] == 4 == saved["after"]["n"]
    )
    assert (tmp_path / "curves.png").exists()
