"""Sampled trajectories of a training run (``samples.jsonl``), for ``searchqa view``.

Every ``samples_every`` steps the trainer appends ``samples_per_step`` episodes of the step: the
first rollout of each of the first groups (so the samples cover different questions). Each line
is one episode as text, the way the env saw it::

    {"step": 3, "question_id": ..., "question": ..., "question_type": ..., "golden_answers": [...],
     "prediction": ..., "reward": 0.5, "advantage": 0.7, "reward_components": {...},
     "end_reason": "answer", "searches": 1, "turns": 2, "source": "train",
     "log": [["action", "<search>...</search>"], ["observation", "<result>...</result>"], ...],
     "retrieved_ids": [...]}

``log`` holds the policy's actions and the env's observations (which carry the retrieved
passages as the policy read them), in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from research_agents.grpo.rollout import Trajectory
    from research_env.vector import SearchQAVectorEnv


def pick(trajs: Sequence[Trajectory], count: int) -> list[int]:
    """Positions of the first rollout of each group, in group order, at most ``count``."""
    seen: set[int] = set()
    out: list[int] = []
    for i, t in enumerate(trajs):
        if t.group_id not in seen:
            seen.add(t.group_id)
            out.append(i)
    return out[:count]


def sample_record(
    step: int, traj: Trajectory, advantage: float, env: Any, source: str = "train"
) -> dict[str, Any]:
    """One ``samples.jsonl`` line for ``traj``, whose episode is still the env's current one."""
    ep = env.episode
    record = traj.record(env.examples[traj.question_index])
    return {
        "step": step,
        "source": source,
        "question_id": record.question_id,
        "question": record.question,
        "question_type": record.question_type,
        "golden_answers": record.golden_answers,
        "prediction": record.prediction,
        "reward": record.reward,
        "advantage": float(advantage),
        "reward_components": {
            k: (float(v) if isinstance(v, int | float) else v)
            for k, v in dict(traj.info.get("reward_components", {})).items()
        },
        "end_reason": record.end_reason,
        "searches": record.searches,
        "turns": record.turns,
        "log": [list(pair) for pair in ep.log] if ep is not None else [],
        "retrieved_ids": list(ep.retrieved_ids) if ep is not None else [],
    }


def append_samples(
    path: Path,
    step: int,
    trajs: Sequence[Trajectory],
    advantages: Sequence[float],
    vec: SearchQAVectorEnv,
    count: int,
) -> int:
    """Append ``count`` of the step's episodes to ``path``; returns how many were written.

    Must run right after the rollout, while each sub-env still holds its episode.
    """
    rows = [sample_record(step, trajs[i], advantages[i], vec.envs[i]) for i in pick(trajs, count)]
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    return len(rows)
