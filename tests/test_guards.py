"""Collapse guards: the metrics, the thresholds, and real tiny runs that collapse on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.guards import GOOD_CHECKPOINT, breaches, same_answer_share
from research_agents.grpo.presets import get_preset
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.trainer import GRPOTrainer


def even_token_share(t: Trajectory) -> float:
    """A reward a random model can climb: the share of its sampled ids that are even.

    With a huge lr the policy jumps to emitting one (even) id: entropy falls to 0 and every
    group's rewards become equal, the collapse the guards must catch.
    """
    ids = [i for i, m in zip(t.response_ids, t.loss_mask) if m]
    return sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1)


def _collapsing(tmp_path: Path, **overrides: Any) -> GRPOConfig:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "run"),
        "reward_hook": "test_guards:even_token_share",
        "lr": 1.0,  # on purpose: a step this large collapses the tiny policy in a few steps
        "steps": 8,
        "questions_per_step": 2,
        "group_size": 4,
        "mini_batch_size": 8,
        "checkpoint_every": 0,
        "samples_per_step": 0,
        "guard_min_answered": 0.0,  # the random model never answers; judge the collapse only
    }
    return get_preset("tiny").replace(**(settings | overrides))


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_same_answer_share_counts_one_answer_given_to_different_questions() -> None:
    assert same_answer_share(["Paris"] * 6 + ["Lima", None], [0, 1, 2, 3, 4, 5, 6, 7]) == 0.75
    # G rollouts agreeing on one question's answer is not collapse
    assert same_answer_share(["Lima"] * 4 + ["Quito"] * 4, [0] * 4 + [1] * 4) == 0.0
    assert same_answer_share(["The Euro", "euro"], [0, 1]) == 1.0  # normalised before counting
    assert same_answer_share([], []) == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1 questions"):
        same_answer_share(["a", "b"], [0])


def test_breaches_name_each_threshold_crossed() -> None:
    cfg = GRPOConfig()
    healthy = {
        "guard/same_answer_share": 0.1,
        "grpo/entropy": 0.5,
        "perf/train_tokens": 100,
        "grpo/zero_variance_groups": 0.5,
        "env/answered": 0.9,
    }
    assert breaches(healthy, cfg) == []
    collapsed = healthy | {
        "guard/same_answer_share": 0.9,
        "grpo/entropy": 0.0,
        "grpo/zero_variance_groups": 1.0,
        "env/answered": 0.0,
    }
    found = breaches(collapsed, cfg)
    assert len(found) == 4 and found[0].startswith("same answer to different questions 0.90")
    # no token trained: the entropy is not judged; a missing or NaN metric is not judged
    assert breaches(healthy | {"grpo/entropy": 0.0, "perf/train_tokens": 0}, cfg) == []
    assert breaches({"grpo/entropy": float("nan")}, cfg) == []


def test_guard_config_is_checked() -> None:
    with pytest.raises(ValueError, match="guard: expected off\\|warn\\|stop\\|rollback"):
        GRPOConfig(guard="panic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guard_rollback_lr_scale"):
        GRPOConfig(guard_rollback_lr_scale=0.0)


def test_collapsing_run_is_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainer = GRPOTrainer(_collapsing(tmp_path, guard="stop", guard_patience=2))
    history = trainer.train(progress=False)
    assert trainer.guard is not None
    event = trainer.guard.events[-1]
    assert event["action"] == "stop" and trainer.step == event["step"] < 8
    assert len(history) == trainer.step
    last = history[-1]
    assert last["guard/unhealthy"] == 1.0 and last["guard/streak"] >= 2
    assert last["grpo/zero_variance_groups"] > 0.95 or last["grpo/entropy"] < 0.01
    assert f"guard: step {trainer.step}: stopping" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoint").is_dir()  # the final checkpoint is still written


@pytest.mark.slow
def test_the_same_run_warned_only_goes_on(tmp_path: Path) -> None:
    trainer = GRPOTrainer(_collapsing(tmp_path, guard="warn", guard_patience=2, steps=6))
    trainer.train(progress=False)
    assert trainer.step == 6
    assert trainer.guard is not None and trainer.guard.events
    assert all(e["action"] == "warn" for e in trainer.guard.events)


@pytest.mark.slow
def test_collapsing_run_rolls_back_to_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = _collapsing(
        tmp_path, guard="rollback", guard_patience=1, checkpoint_every=1, guard_max_rollbacks=1
    )
    trainer = GRPOTrainer(cfg)
    trainer.train(progress=False)
    assert trainer.guard is not None
    actions = [e["action"] for e in trainer.guard.events]
    assert actions == ["rollback", "stop"]  # one rollback allowed, then the run stops
    assert trainer.config.lr == pytest.approx(cfg.lr * cfg.guard_rollback_lr_scale)
    assert (tmp_path / "run" / GOOD_CHECKPOINT / "trainer_state.json").is_file()
    steps = [m["step"] for m in _metrics(tmp_path / "run")]
    good = trainer.guard.events[0]["good_step"]
    assert good is not None and steps.count(good + 1) >= 2  # the step after it, played again
    replays = [m for m in _metrics(tmp_path / "run") if m["step"] == good + 1]
    # played again with another sampler seed, so not the same rollouts a second time
    assert replays[0]["train/rollout_seed"] != replays[1]["train/rollout_seed"]
    rolled = [m for m in _metrics(tmp_path / "run") if m.get("guard/action") == "rollback"]
    assert len(rolled) == 1 and rolled[0]["guard/rollbacks"] == 1.0
