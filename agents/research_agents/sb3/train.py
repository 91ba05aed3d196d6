"""Train SB3's PPO on the choice env and score policies on held-out questions.

Used by ``benchmarks/sb3_choice.py`` and the slow test. Training runs ``n_envs`` copies of the
env in one process (:class:`~research_agents.sb3.vec.ChoiceVecEnv`: one encoder call per step for
all of them) sharing one embedding cache; evaluation plays each chosen
question once, with a reset seed derived from its position, so a policy's score is reproducible.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecMonitor

from research_agents.sb3.choice_env import ChoiceEnvConfig, SearchQAChoiceEnv
from research_agents.sb3.embed import TextEmbedder
from research_agents.sb3.policy import CandidateScoringPolicy
from research_agents.sb3.vec import ChoiceVecEnv
from research_env.records import EpisodeRecord, episode_record

__all__ = [
    "Chooser",
    "PPOSettings",
    "evaluate",
    "ppo_chooser",
    "random_chooser",
    "train_ppo",
]

Chooser = Callable[[np.ndarray, SearchQAChoiceEnv], int]
"""Picks a slot given the observation and the env (for its real candidates)."""


@dataclass(frozen=True)
class PPOSettings:
    """PPO hyperparameters and the training budget."""

    total_timesteps: int = 200_000
    """Upper bound on env steps (all envs together)."""

    time_budget_s: float | None = None
    """Stop after this many seconds of training, checked after each env step (``None``: no
    limit)."""

    policy: Literal["scorer", "mlp"] = "scorer"
    """``"scorer"``: :class:`CandidateScoringPolicy`; ``"mlp"``: SB3's ``MlpPolicy``."""

    n_envs: int = 8
    """Env copies stepped together."""

    n_steps: int = 64
    """Steps per env per rollout (a rollout is ``n_envs * n_steps`` steps)."""

    batch_size: int = 128
    """Minibatch size."""

    n_epochs: int = 4
    """Passes over each rollout."""

    learning_rate: float = 1e-3
    """Adam learning rate."""

    gamma: float = 1.0
    """Discount; episodes are at most ``max_turns`` steps, the reward is terminal."""

    gae_lambda: float = 0.95
    """GAE lambda."""

    ent_coef: float = 0.01
    """Entropy bonus."""

    clip_range: float = 0.2
    """PPO clip range."""

    seed: int = 0
    """Seed of PPO and of the envs (env ``i`` is seeded ``seed + i``)."""

    def __post_init__(self) -> None:
        if self.policy not in ("scorer", "mlp"):
            raise ValueError(f"PPOSettings.policy: expected 'scorer' or 'mlp', got {self.policy!r}")
        if self.total_timesteps < 1 or self.n_envs < 1 or self.n_steps < 1:
            raise ValueError(
                "PPOSettings: total_timesteps, n_envs and n_steps must be >= 1, got "
                f"{self.total_timesteps}, {self.n_envs}, {self.n_steps}"
            )


class _Budget(BaseCallback):
    """Stops training after ``seconds``; records the episodes' rewards; prints progress."""

    def __init__(self, seconds: float | None, progress_every: int = 0) -> None:
        super().__init__()
        self.seconds = seconds
        self.progress_every = progress_every
        self.start = time.perf_counter()
        self.episode_rewards: list[float] = []
        self._rollouts = 0

    def _on_rollout_end(self) -> None:
        self._rollouts += 1
        if self.progress_every and self._rollouts % self.progress_every == 0:
            recent = self.episode_rewards[-500:]
            print(
                f"  {self.num_timesteps} steps, {time.perf_counter() - self.start:.0f} s, "
                f"mean reward of the last {len(recent)} episodes "
                f"{np.mean(recent) if recent else float('nan'):.3f}",
                flush=True,
            )

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "episode" in info:
                self.episode_rewards.append(float(info["episode"]["r"]))
        return self.seconds is None or time.perf_counter() - self.start < self.seconds


def train_ppo(
    env_config: ChoiceEnvConfig,
    settings: PPOSettings,
    embedder: TextEmbedder,
    verbose: int = 0,
    progress_every: int = 0,
) -> tuple[PPO, dict[str, Any]]:
    """Train PPO on ``n_envs`` copies of the choice env.

    Args:
        env_config: The training env (split, question types, K...).
        settings: Hyperparameters and budget.
        embedder: Shared by all env copies (and ideally the evaluation env): one cache.
        verbose: SB3's verbosity.
        progress_every: Print a progress line every this many rollouts (0: never).

    Returns:
        The model and training stats: ``timesteps``, ``episodes``, ``seconds``,
        ``reward_first`` / ``reward_last`` (mean reward of the first / last 500 episodes).
    """

    def make(i: int) -> Callable[[], SearchQAChoiceEnv]:
        return lambda: SearchQAChoiceEnv(env_config, embedder=embedder)

    vec = VecMonitor(ChoiceVecEnv([make(i) for i in range(settings.n_envs)]))
    vec.seed(settings.seed)
    policy: Any = CandidateScoringPolicy if settings.policy == "scorer" else "MlpPolicy"
    model = PPO(
        policy,
        vec,
        n_steps=settings.n_steps,
        batch_size=settings.batch_size,
        n_epochs=settings.n_epochs,
        learning_rate=settings.learning_rate,
        gamma=settings.gamma,
        gae_lambda=settings.gae_lambda,
        ent_coef=settings.ent_coef,
        clip_range=settings.clip_range,
        seed=settings.seed,
        device="cpu",
        verbose=verbose,
    )
    budget = _Budget(settings.time_budget_s, progress_every)
    start = time.perf_counter()
    model.learn(settings.total_timesteps, callback=budget)
    rewards = budget.episode_rewards
    stats = {
        "timesteps": int(model.num_timesteps),
        "episodes": len(rewards),
        "seconds": time.perf_counter() - start,
        "reward_first": float(np.mean(rewards[:500])) if rewards else float("nan"),
        "reward_last": float(np.mean(rewards[-500:])) if rewards else float("nan"),
        "settings": dataclasses.asdict(settings),
    }
    return model, stats


def ppo_chooser(model: PPO, deterministic: bool = True) -> Chooser:
    """A chooser that asks ``model`` (the most likely slot when ``deterministic``)."""

    def choose(obs: np.ndarray, env: SearchQAChoiceEnv) -> int:
        action, _ = model.predict(obs, deterministic=deterministic)
        return int(action)

    return choose


def random_chooser(seed: int) -> Chooser:
    """A chooser that picks one of the real candidates uniformly (padding slots excluded)."""
    rng = np.random.default_rng(seed)

    def choose(obs: np.ndarray, env: SearchQAChoiceEnv) -> int:
        return int(rng.integers(len(env.candidates)))

    return choose


def evaluate(
    env: SearchQAChoiceEnv,
    choose: Chooser,
    indices: Iterable[int] | None = None,
    seed: int = 0,
) -> list[EpisodeRecord]:
    """Play each question of ``indices`` (default: all of the env's) once with ``choose``.

    The reset seed of the question at position ``p`` is ``seed + p`` (it fixes the candidate
    shuffles), so two choosers evaluated with the same ``seed`` see the same slots. Summarise
    the records with :func:`research_agents.eval.metrics.summarise`, as for any agent.
    """
    out = []
    for p, index in enumerate(range(len(env.examples)) if indices is None else indices):
        obs, start = env.reset(seed=seed + p, options={"index": int(index)})
        info: dict[str, Any] = {}
        reward, turns, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(choose(obs, env))
            turns += 1
            done = terminated or truncated
        question = env.examples[int(index)].question
        out.append(
            episode_record(start, info, question=question, reward=float(reward), turns=turns)
        )
    return out
