"""The demo's mechanics with the tiny random model (``make demo`` runs it with SmolLM2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from research_agents.demo import main


def test_demo_prints_before_after_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "--preset",
            "tiny",
            "--minutes",
            "0.01",
            "--eval-size",
            "4",
            "--steps",
            "1",
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "| policy | EM | F1 | searches/q | format ok |" in out
    assert "zero-shot" in out and "+ GRPO, 1 steps" in out
    saved = json.loads((tmp_path / "demo_results.json").read_text())
    assert saved["steps"] == 1 and saved["before"]["n"] == 4 == saved["after"]["n"]
    assert (tmp_path / "curves.png").exists()
