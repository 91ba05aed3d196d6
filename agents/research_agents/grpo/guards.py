"""Collapse guards: notice a GRPO run collapsing, then warn, stop, or roll back.

The field's most reported failure of search-RL runs is collapse: every rollout gives the same
answer ("capital of France" to every question, docs/results.md), the policy's entropy goes to
zero, every group has equal rewards so no gradient is left, or the policy stops answering.
Each step, :func:`collapse_metrics` measures the first of these from the trajectories, and
:class:`CollapseGuard` reads them with the trainer's own metrics:

=============================  ================================  ===============================
metric                         what it measures                   breach (``GRPOConfig`` field)
=============================  ================================  ===============================
``guard/same_answer_share``    share of rollouts giving the most  ``> guard_max_same_answer``
                               common answer, counted only when
                               it answers >= 2 different
                               questions
``grpo/entropy``               mean token entropy of the trained  ``< guard_min_entropy``
                               tokens (skipped when none were)
``grpo/zero_variance_groups``  share of groups with equal rewards ``> guard_max_zero_variance``
``env/answered``               share of rollouts that answered    ``< guard_min_answered``
=============================  ================================  ===============================

A step that breaches any threshold is *unhealthy*; after ``guard_patience`` unhealthy steps in a
row the guard acts (``GRPOConfig.guard``): ``warn`` prints one line, ``stop`` ends training
after that step (the final checkpoint is written as usual), ``rollback`` restores the last
*good* checkpoint (saved under ``<output_dir>/checkpoint-good`` at every ``checkpoint_every``
step that was healthy), scales the learning rate by ``guard_rollback_lr_scale`` and goes on; it
stops instead after ``guard_max_rollbacks`` rollbacks, or when no good checkpoint exists yet.
The step counter goes back with the checkpoint, so ``metrics.jsonl`` then holds a step number
more than once; ``guard/rollbacks`` counts them. The replayed steps sample with a seed shifted by
the rollback count: when the unhealthy steps made no update (every group's rewards equal), the
weights after a rollback are the ones that produced them, and the same seeds would replay them
exactly. Guards judge rank 0's trajectories; under
torchrun / accelerate only ``warn`` acts (one rank alone must not stop or roll back).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from research_env.rewards import normalize_answer

if TYPE_CHECKING:
    from research_agents.grpo.config import GRPOConfig
    from research_agents.grpo.rollout import Trajectory
    from research_agents.grpo.trainer import GRPOTrainer

__all__ = [
    "GOOD_CHECKPOINT",
    "CollapseGuard",
    "GuardAction",
    "breaches",
    "collapse_metrics",
    "same_answer_share",
]

GOOD_CHECKPOINT = "checkpoint-good"
"""Folder (under ``output_dir``) of the last checkpoint saved at a healthy step."""

GuardAction = Literal["off", "warn", "stop", "rollback"]


def same_answer_share(predictions: Sequence[str | None], questions: Sequence[int]) -> float:
    """Share of rollouts giving the batch's most common answer, if it answers >= 2 questions.

    Answers are compared after :func:`research_env.rewards.normalize_answer`; rollouts without
    an answer count in the denominator only. An answer given to one question only (G rollouts
    agreeing on it) is agreement, not collapse, and scores 0.

    Args:
        predictions: Each rollout's answer (``None``: it did not answer).
        questions: Each rollout's question index.

    Returns:
        A share in ``[0, 1]``.

    Examples:
        >>> same_answer_share(["Paris", "paris", "Lima", None], [0, 1, 2, 3])
        0.5
        >>> same_answer_share(["Lima", "Lima", "Quito", "Quito"], [0, 0, 1, 1])
        0.0
    """
    if len(predictions) != len(questions):
        raise ValueError(f"{len(predictions)} predictions for {len(questions)} questions")
    if not predictions:
        return 0.0
    rollouts: dict[str, int] = defaultdict(int)
    asked: dict[str, set[int]] = defaultdict(set)
    for pred, q in zip(predictions, questions):
        if pred is None:
            continue
        key = normalize_answer(pred)
        rollouts[key] += 1
        asked[key].add(q)
    shared = [n for key, n in rollouts.items() if len(asked[key]) >= 2]
    return max(shared, default=0) / len(predictions)


def collapse_metrics(trajs: Sequence[Trajectory]) -> dict[str, float]:
    """The trajectory-side guard metrics of one step (``guard/same_answer_share``)."""
    preds = [t.info.get("prediction") for t in trajs]
    return {
        "guard/same_answer_share": same_answer_share(
            [p if isinstance(p, str) else None for p in preds], [t.question_index for t in trajs]
        )
    }


def _finite(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def breaches(metrics: dict[str, Any], cfg: GRPOConfig) -> list[str]:
    """The thresholds ``metrics`` crosses, one readable phrase each (empty: healthy).

    A metric that is missing (or not finite) is not judged; the entropy is not judged on a
    step that trained no token (``perf/train_tokens`` 0).
    """
    out: list[str] = []
    same = _finite(metrics, "guard/same_answer_share")
    if same is not None and same > cfg.guard_max_same_answer:
        out.append(f"same answer to different questions {same:.2f} > {cfg.guard_max_same_answer}")
    entropy = _finite(metrics, "grpo/entropy")
    trained = _finite(metrics, "perf/train_tokens")
    judged = entropy is not None and (trained is None or trained > 0)
    if judged and entropy is not None and entropy < cfg.guard_min_entropy:
        out.append(f"entropy {entropy:.4f} < {cfg.guard_min_entropy}")
    zero_var = _finite(metrics, "grpo/zero_variance_groups")
    if zero_var is not None and zero_var > cfg.guard_max_zero_variance:
        out.append(f"zero-variance groups {zero_var:.2f} > {cfg.guard_max_zero_variance}")
    answered = _finite(metrics, "env/answered")
    if answered is not None and answered < cfg.guard_min_answered:
        out.append(f"answered {answered:.2f} < {cfg.guard_min_answered}")
    return out


@dataclass
class CollapseGuard:
    """Watches each step's metrics and acts on a collapse (see the module docstring)."""

    cfg: GRPOConfig
    """The run's config (the ``guard*`` fields)."""

    log: Callable[[str], None] = print
    """Where warnings go."""

    streak: int = 0
    """Unhealthy steps in a row."""

    rollbacks: int = 0
    """Rollbacks done so far."""

    good_step: int | None = None
    """Step of the last good checkpoint (``None``: none saved yet)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    """``{"step", "action", "reasons", "good_step"}`` of every time the guard acted."""

    def after_step(self, trainer: GRPOTrainer, metrics: dict[str, Any]) -> bool:
        """Judge the step just taken; add ``guard/*`` to ``metrics``; act. True: stop training.

        Call it after the step's metrics are complete and before they are logged.
        """
        cfg = self.cfg
        step = trainer.step
        reasons = breaches(metrics, cfg)
        self.streak = self.streak + 1 if reasons else 0
        metrics["guard/unhealthy"] = float(bool(reasons))
        metrics["guard/streak"] = float(self.streak)
        metrics["guard/rollbacks"] = float(self.rollbacks)
        if not reasons:
            if (
                cfg.guard == "rollback"
                and cfg.checkpoint_every
                and step % cfg.checkpoint_every == 0
            ):
                trainer.save_checkpoint(self.good_path(trainer))
                self.good_step = step
            return False
        if self.streak < cfg.guard_patience:
            return False
        action: GuardAction = cfg.guard
        if action == "rollback" and (
            self.good_step is None or self.rollbacks >= cfg.guard_max_rollbacks
        ):
            action = "stop"
        why = "; ".join(reasons)
        self.events.append(
            {"step": step, "action": action, "reasons": reasons, "good_step": self.good_step}
        )
        metrics["guard/action"] = action
        if action == "warn":
            self.log(f"guard: step {step}: collapse warning ({why})")
            return False
        if action == "stop":
            self.log(f"guard: step {step}: stopping ({why})")
            return True
        self.log(
            f"guard: step {step}: rolling back to the good checkpoint of step {self.good_step} "
            f"with lr x{cfg.guard_rollback_lr_scale} ({why})"
        )
        elapsed = trainer.elapsed_s
        trainer.load_checkpoint(self.good_path(trainer))
        trainer.elapsed_s = elapsed
        trainer.config = trainer.config.replace(lr=trainer.config.lr * cfg.guard_rollback_lr_scale)
        self.rollbacks += 1
        self.streak = 0
        metrics["guard/rollbacks"] = float(self.rollbacks)
        return False

    @staticmethod
    def good_path(trainer: GRPOTrainer) -> Path:
        """Where the last good checkpoint of ``trainer`` lives."""
        return Path(trainer.output_dir) / GOOD_CHECKPOINT
