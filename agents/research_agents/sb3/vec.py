"""A DummyVecEnv for the choice env that embeds for all its sub-envs in one encoder call.

Stepping sub-envs one after the other, as ``DummyVecEnv`` does, calls the encoder once per
sub-env with a handful of new texts; on a CPU a call costs far more than one text in it. Here
every sub-env first acts (:meth:`SearchQAChoiceEnv.advance`), then the texts all of them need are
embedded together, then each builds its observation from the cache
(:meth:`SearchQAChoiceEnv.observe`); the same for the resets of finished episodes. The results
are exactly those of ``DummyVecEnv`` (same observations, rewards, infos, seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from research_agents.sb3.choice_env import SearchQAChoiceEnv

__all__ = ["ChoiceVecEnv"]


def _prefetch(envs: Sequence[SearchQAChoiceEnv]) -> None:
    """Embed the pending texts of ``envs``, one call per distinct embedder."""
    by_embedder: dict[int, tuple[Any, list[str]]] = {}
    for env in envs:
        _, texts = by_embedder.setdefault(id(env.embedder), (env.embedder, []))
        texts.extend(env.pending_texts())
    for embedder, texts in by_embedder.values():
        embedder.embed(list(dict.fromkeys(texts)))


class ChoiceVecEnv(DummyVecEnv):
    """``DummyVecEnv`` over :class:`SearchQAChoiceEnv` copies, with batched embedding.

    Args:
        env_fns: Functions that build the sub-envs: unwrapped ``SearchQAChoiceEnv`` instances,
            ideally sharing one embedder.

    Raises:
        TypeError: If a sub-env is not a ``SearchQAChoiceEnv``.
    """

    def __init__(self, env_fns: list[Callable[[], SearchQAChoiceEnv]]) -> None:
        super().__init__(env_fns)  # type: ignore[arg-type]
        for i, env in enumerate(self.envs):
            if not isinstance(env, SearchQAChoiceEnv):
                raise TypeError(f"sub-env {i}: expected a SearchQAChoiceEnv, got {type(env)}")
        self.choice_envs: list[SearchQAChoiceEnv] = list(self.envs)  # type: ignore[arg-type]

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env, embedding for all of them at once (then for the resets)."""
        envs = self.choice_envs
        steps = [env.advance(self.actions[i]) for i, env in enumerate(envs)]
        _prefetch(envs)
        restart: list[int] = []
        for i, (env, (reward, terminated, truncated, info)) in enumerate(zip(envs, steps)):
            obs, info = env.observe(info)
            self.buf_rews[i] = reward
            self.buf_dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            self.buf_infos[i] = info
            if self.buf_dones[i]:
                info["terminal_observation"] = obs
                restart.append(i)
            else:
                self._save_obs(i, obs)
        starts = {i: envs[i].start() for i in restart}
        _prefetch([envs[i] for i in restart])
        for i, start_info in starts.items():
            obs, self.reset_infos[i] = envs[i].observe(start_info)
            self._save_obs(i, obs)
        return (
            self._obs_from_buf(),
            np.copy(self.buf_rews),
            np.copy(self.buf_dones),
            [dict(info) for info in self.buf_infos],
        )

    def reset(self) -> VecEnvObs:
        """Reset every sub-env with its pending seed and options, embedding once."""
        starts = []
        for i, env in enumerate(self.choice_envs):
            options = self._options[i] or None
            starts.append(env.start(seed=self._seeds[i], options=options))
        _prefetch(self.choice_envs)
        for i, (env, start_info) in enumerate(zip(self.choice_envs, starts)):
            obs, self.reset_infos[i] = env.observe(start_info)
            self._save_obs(i, obs)
        self._reset_seeds()
        self._reset_options()
        return self._obs_from_buf()
