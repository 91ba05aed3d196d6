"""SearchQAVectorEnv: N SearchQA episodes stepped together, with one retrieval call per step.

``gym.make_vec("SearchQA-v0", num_envs=N, vectorization_mode="vector_entry_point")`` builds it.
Each ``step`` parses every sub-env's action, sends the queries of all sub-envs that searched to
the retriever in ONE ``search_batch`` call, and completes the steps with the results — instead of
one request per environment, which is what makes rollouts wait on retrieval in the anchors. (In
closed-corpus mode each question has its own small index: one call per distinct question.)

Autoreset follows Gymnasium's default ``AutoresetMode.NEXT_STEP``: when a sub-env's episode ends
at step t, step t returns its final observation, reward and info; at step t+1 that sub-env is
reset (its action is ignored), returning the new question's first observation with reward 0 and
``terminated = truncated = False``. The sub-env's info at that step is its ``reset`` info.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from research_env.data.types import Passage
from research_env.env import ObsType, SearchQAEnv
from research_env.resolve import resolve_retriever
from research_env.retrieval.base import RetrievalError, Retriever

BatchObs = dict[str, tuple[str, ...]]


class SearchQAVectorEnv(VectorEnv[BatchObs, Sequence[str], npt.NDArray[Any]]):
    """``num_envs`` independent SearchQA-v0 episodes sharing one retriever.

    Args:
        num_envs: How many episodes run side by side.
        **kwargs: Any :class:`~research_env.env.SearchQAEnv` argument; the retriever is
            resolved once and shared by all sub-envs (absent or ``None``: the env's default for
            the dataset, as for a single ``SearchQAEnv``).

    Observations are a dict of tuples (one string per sub-env); actions a sequence of
    ``num_envs`` strings; rewards, terminations and truncations arrays; infos Gymnasium's
    dict-of-arrays with ``_key`` masks.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"expected num_envs >= 1, got {num_envs!r}")
        kwargs.pop("render_mode", None)
        spec = kwargs.pop("retriever", None)
        # No retriever named: the first sub-env picks the env's own default for the dataset
        # (research_env.resolve.default_retriever), and the others share it.
        first = SearchQAEnv(retriever=None if spec is None else resolve_retriever(spec), **kwargs)
        self.retriever: Retriever = first.retriever
        self.envs = [first] + [
            SearchQAEnv(retriever=self.retriever, **kwargs) for _ in range(num_envs - 1)
        ]
        self.num_envs = num_envs
        self.top_k = self.envs[0].top_k
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[BatchObs, dict[str, Any]]:
        """Reset every sub-env; an int ``seed`` gives sub-env i the seed ``seed + i``."""
        if seed is None or isinstance(seed, int):
            seeds: list[int | None] = [
                None if seed is None else seed + i for i in range(self.num_envs)
            ]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        observations: list[ObsType] = []
        infos: dict[str, Any] = {}
        for i, (env, s) in enumerate(zip(self.envs, seeds)):
            obs, info = env.reset(seed=s, options=options)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._needs_reset[:] = False
        return self._batch(observations), infos

    def step(
        self, actions: Sequence[str]
    ) -> tuple[BatchObs, npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], dict[str, Any]]:
        """Step every sub-env; the queries of all searching sub-envs go in one batched call."""
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise ValueError(f"expected a sequence of {self.num_envs} actions")
        actions = list(actions)
        self._check_actions(dict(enumerate(actions)), playing=~self._needs_reset)
        playing = {i: a for i, a in enumerate(actions) if not self._needs_reset[i]}
        results = self.step_some(playing)

        observations: list[ObsType] = []
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                obs, info = env.reset()
                self._needs_reset[i] = False
            else:
                obs, reward, terminated, truncated, info = results[i]
                rewards[i], terminations[i], truncations[i] = reward, terminated, truncated
                self._needs_reset[i] = terminated or truncated
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return self._batch(observations), rewards, terminations, truncations, infos

    def step_some(
        self, actions: Mapping[int, str]
    ) -> dict[int, tuple[ObsType, float, bool, bool, dict[str, Any]]]:
        """Step only the sub-envs named in ``actions``, with no autoreset.

        This is the primitive under :meth:`step`, for drivers that manage episodes themselves
        (the GRPO rollout plays exactly one episode per sub-env). The queries of all searching
        sub-envs still go to the retriever in one ``search_batch`` call.

        Args:
            actions: Sub-env index -> action. Those sub-envs must be inside an episode.

        Returns:
            Sub-env index -> that sub-env's ``(obs, reward, terminated, truncated, info)``.

        Raises:
            TypeError: If an action is not a ``str`` or an index not an ``int``.
            IndexError: If an index is out of range.
            RuntimeError: If a named sub-env is not inside an episode.

        The whole batch is checked before any sub-env is touched: after an error every sub-env
        is exactly as it was, and the next call can go ahead.
        """
        self._check_actions(actions)
        queries: dict[int, str] = {}
        for i, action in actions.items():
            query = self.envs[i].begin_step(action)
            if query is not None:
                queries[i] = query
        results = self._retrieve(queries)
        return {i: self.envs[i].finish_step(results.get(i)) for i in actions}

    def _check_actions(
        self, actions: Mapping[int, Any], playing: npt.NDArray[np.bool_] | None = None
    ) -> None:
        """Raise on the first bad entry of ``actions`` (index -> action), changing nothing.

        Sub-envs marked ``True`` in ``playing`` (default: all named) must be inside an episode.
        """
        for i, action in actions.items():
            if isinstance(i, bool) or not isinstance(i, int | np.integer):
                raise TypeError(f"expected sub-env indices to be ints, got {i!r}")
            if not 0 <= i < self.num_envs:
                raise IndexError(f"sub-env index {i} out of range for {self.num_envs} envs")
            if not isinstance(action, str):
                raise TypeError(
                    f"actions[{i}]: expected a str, got {type(action).__name__} "
                    "(no sub-env was stepped)"
                )
            if playing is not None and not playing[i]:
                continue
            episode = self.envs[i].episode
            if episode is None or episode.done:
                state = "not reset" if episode is None else "over"
                raise RuntimeError(
                    f"sub-env {i}: its episode is {state}; reset() first (no sub-env was stepped)"
                )

    def _retrieve(self, queries: dict[int, str]) -> dict[int, list[Passage] | RetrievalError]:
        # One search_batch per retriever in use: the shared one, or in closed-corpus mode one
        # per distinct question (sub-envs on the same question share its retriever).
        groups: dict[int, tuple[Retriever, list[int]]] = {}
        for i in queries:
            retriever = self.envs[i].episode_retriever
            groups.setdefault(id(retriever), (retriever, []))[1].append(i)
        results: dict[int, list[Passage] | RetrievalError] = {}
        for retriever, members in groups.values():
            try:
                batches = retriever.search_batch([queries[i] for i in members], self.top_k)
            except RetrievalError as e:
                results.update(dict.fromkeys(members, e))
                continue
            results.update(zip(members, batches))
        return results

    @staticmethod
    def _batch(observations: list[ObsType]) -> BatchObs:
        return {key: tuple(obs[key] for obs in observations) for key in observations[0]}

    def close_extras(self, **kwargs: Any) -> None:
        """Close the sub-envs."""
        for env in self.envs:
            env.close()
