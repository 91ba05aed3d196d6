"""Play an agent over a split of SearchQA-v0 and summarise EM / F1 / search behaviour."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym


class TextAgent(Protocol):
    """The minimal agent the evaluator drives: one text action per observation."""

    name: str

    def reset(self, question: str) -> None:
        """Start an episode on ``question``."""

    def act(self, observation: str) -> str:
        """Return the next generated segment."""


@dataclass
class Summary:
    """Aggregated metrics of one agent on one split."""

    agent: str
    episodes: int = 0
    em: float = 0.0
    f1: float = 0.0
    format_ok: float = 0.0
    searches: float = 0.0
    by_type: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Question type -> (episodes, EM)."""


def play_episode(env: gym.Env[Any, Any], agent: TextAgent, index: int) -> dict[str, Any]:
    """Play question ``index`` to the end; return the final step's info plus the type."""
    obs, reset_info = env.reset(options={"index": index})
    agent.reset(obs["question"])
    while True:
        obs, _reward, terminated, truncated, info = env.step(agent.act(obs["observation"]))
        if terminated or truncated:
            return {**info, "question_type": reset_info["question_type"]}


def evaluate(env: gym.Env[Any, Any], agent: TextAgent, limit: int | None = None) -> Summary:
    """Play every question of the env's split (or the first ``limit``) once, in order."""
    n = len(env.unwrapped.examples)  # type: ignore[attr-defined]
    n = n if limit is None else min(n, limit)
    per_type: dict[str, list[float]] = defaultdict(list)
    totals = {"em": 0.0, "f1": 0.0, "format_ok": 0.0, "searches": 0.0}
    for i in range(n):
        info = play_episode(env, agent, i)
        rc = info["reward_components"]
        totals["em"] += rc["em"]
        totals["f1"] += rc["f1"]
        totals["format_ok"] += float(rc["format_ok"])
        totals["searches"] += info["num_searches"]
        per_type[str(info["question_type"])].append(rc["em"])
    return Summary(
        agent=agent.name,
        episodes=n,
        **{k: v / max(n, 1) for k, v in totals.items()},
        by_type={t: (len(v), sum(v) / len(v)) for t, v in sorted(per_type.items())},
    )
