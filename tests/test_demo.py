"""The demo's mechanics with the tiny random model (``make demo`` runs it with SmolLM2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from research_agents.demo import main
from research_agents.demo_multihop import main as main_multihop


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


def test_multihop_demo_trains_two_stages_and_plays_bridge_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_multihop(
        [
            "--preset",
            "tiny",
            "--stage2-preset",
            "tiny-multihop",
            "--eval-size",
            "5",
            "--steps",
            "2",
            "--stage2-steps",
            "1",
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "| policy | EM | F1 | searches/q single-hop / multi-hop | EM bridge |" in out
    # No wall-clock cap: the step counts alone end training, stage 2 from stage 1's weights.
    assert "zero-shot" in out and "+ GRPO, 3 steps (2 stages)" in out
    assert "trained 3 steps in" in out and "episode with the most searches" in out
    saved = json.loads((tmp_path / "demo_results.json").read_text())
    assert saved["steps"] == {"stage1": 2, "stage2": 1}
    assert saved["config"]["stage2"]["model"] == str(tmp_path / "stage1" / "checkpoint" / "model")
    assert saved["config"]["stage1"]["time_budget_s"] is None
    assert saved["config"]["stage2"]["max_turns"] == 4
    # the held-out set: the four single-hop types and bridge, one each
    assert saved["before"]["n"] == 5 == saved["after"]["n"]
    assert set(saved["after"]["by_type"]) == {
        "capital",
        "capital_reverse",
        "currency",
        "highest_point",
        "bridge",
    }
    assert saved["most_searches"]["response"]  # the episode's text as played
    assert (tmp_path / "curves.png").exists() and (tmp_path / "stage1" / "curves.png").exists()
