"""The Agent protocol: what any SearchQA-v0 player receives and returns, and a driver for it.

An agent plays many episodes side by side. Each episode lives in a *slot*: the index of a
sub-env of a :class:`~research_env.vector.SearchQAVectorEnv`, or ``0`` for a single env.
The driver calls :meth:`Agent.begin` when an episode starts in a slot, then, round after round,
:meth:`Agent.act` with the observations of every slot still playing; the agent returns one
text action per slot. Batching is the agent's choice: an LLM agent generates for all slots in
one call, a rule-based agent can loop.

An observation is the env's observation dict: ``prompt`` (the rendered prompt), ``question``
and ``observation`` (the text the env returned for the last action, e.g. a ``<result>``
block; empty at the start of an episode).

Agents that keep one object per episode (``reset(question)`` / ``act(observation) -> str``)
plug in through :class:`PerEpisode`. :func:`play` runs any agent over chosen questions and
returns one :class:`EpisodeRecord` per question; it needs neither torch nor a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import gymnasium as gym

from research_env.env import SearchQAEnv
from research_env.records import EpisodeRecord, episode_record
from research_env.vector import SearchQAVectorEnv

__all__ = [
    "Agent",
    "EpisodeAgent",
    "EpisodeRecord",
    "EpisodeStats",
    "Observation",
    "PerEpisode",
    "play",
]

Observation = Mapping[str, str]
"""The env's observation dict: ``prompt``, ``question`` and ``observation``."""


@runtime_checkable
class Agent(Protocol):
    """Plays SearchQA-v0 episodes, any number side by side.

    Attributes:
        name: A short identifier used in result tables (``"naive-rag"``, ``"my-agent"``).
    """

    name: str

    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        """A new episode starts in ``slot``.

        Args:
            slot: The episode's slot (sub-env index; ``0`` for a single env).
            observation: The reset observation (``observation["observation"]`` is empty).
            info: The reset info: ``question_id``, ``question_type``, ``index``, ``split``.
        """

    def act(self, observations: Mapping[int, Observation]) -> Mapping[int, str]:
        """Return the next action (a generated text segment) for every slot given.

        Args:
            observations: Slot -> the latest observation of that slot's episode.

        Returns:
            Slot -> action, for exactly the slots in ``observations``.
        """


@runtime_checkable
class EpisodeStats(Protocol):
    """Optional: an agent that reports per-episode numbers (e.g. ``generated_tokens``)."""

    def episode_stats(self, slot: int) -> Mapping[str, float]:
        """Numbers about the episode that just ended in ``slot``; kept in its record."""


class EpisodeAgent(Protocol):
    """The simplest agent: one object per episode, one action per observation text."""

    def reset(self, question: str) -> None:
        """Start an episode on ``question``."""

    def act(self, observation: str) -> str:
        """Return the next action given the latest observation text."""


class PerEpisode:
    """Adapt one-episode-at-a-time agents to the :class:`Agent` protocol.

    Args:
        factory: Builds a fresh :class:`EpisodeAgent`; called once per slot.
        name: The name in result tables.

    Example:
        >>> from research_agents.baselines import ScriptedFactbookAgent  # doctest: +SKIP
        >>> agent = PerEpisode(ScriptedFactbookAgent, name="scripted")  # doctest: +SKIP
    """

    def __init__(self, factory: Callable[[], EpisodeAgent], name: str) -> None:
        self.name = name
        self._factory = factory
        self._agents: dict[int, EpisodeAgent] = {}

    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        """Reset (creating if needed) the slot's agent on the new question."""
        agent = self._agents.get(slot)
        if agent is None:
            agent = self._agents[slot] = self._factory()
        agent.reset(observation["question"])

    def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
        """Ask each slot's agent for its next action."""
        return {s: self._agents[s].act(obs["observation"]) for s, obs in observations.items()}


def play(
    agent: Agent,
    env: gym.Env[Any, Any] | SearchQAVectorEnv,
    indices: Iterable[int] | None = None,
    *,
    seed: int = 0,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> list[EpisodeRecord]:
    """Play each chosen question once and return one record per question, in ``indices`` order.

    With a vector env, up to ``num_envs`` questions play side by side and every round sends
    all their searches to the retriever in one batch. Reset seeds are ``seed + position`` so
    a run is reproducible however many slots there are.

    Args:
        agent: Any :class:`Agent`.
        env: A :class:`SearchQAVectorEnv`, or a single SearchQA-v0 env, wrapped or not
            (``gym.make("SearchQA-v0")``): a single env is stepped through its wrappers, so
            wrappers such as episode statistics see every step. Wrappers that change the
            observation change what the agent receives.
        indices: Question indices in the env's split; all of them when ``None``.
        seed: Base reset seed.
        on_episode: Called with each record as its episode ends (e.g. a progress bar).

    Returns:
        The records, in the order of ``indices``.

    Raises:
        ValueError: If the agent omits a slot's action or an index is out of range.
    """
    step_some: Callable[[Mapping[int, str]], Mapping[int, tuple[Any, Any, bool, bool, Any]]]
    if isinstance(env, SearchQAVectorEnv):
        envs: Sequence[gym.Env[Any, Any]] = env.envs
        step_some = env.step_some
        examples = env.envs[0].examples
    elif isinstance(env.unwrapped, SearchQAEnv):
        single = env
        envs = [single]
        step_some = lambda acts: {0: single.step(acts[0])}  # noqa: E731
        examples = env.unwrapped.examples
    else:
        raise TypeError(f"expected a SearchQA-v0 env or a SearchQAVectorEnv, got {env!r}")
    todo = list(range(len(examples))) if indices is None else list(indices)
    stats_of = agent.episode_stats if isinstance(agent, EpisodeStats) else None  # check once
    records: dict[int, EpisodeRecord] = {}
    free = list(range(len(envs)))[::-1]
    live: dict[int, tuple[int, dict[str, Any], list[str]]] = {}  # slot -> (position, info, acts)
    observations: dict[int, Observation] = {}
    position = 0
    while position < len(todo) or live:
        while free and position < len(todo):
            slot = free.pop()
            obs, info = envs[slot].reset(seed=seed + position, options={"index": todo[position]})
            agent.begin(slot, obs, info)
            live[slot] = (position, info, [])
            observations[slot] = obs
            position += 1
        actions = agent.act({s: observations[s] for s in live})
        missing = set(live) - set(actions)
        extra = set(actions) - set(live)
        if extra:
            raise ValueError(
                f"agent {agent.name!r} returned actions for slot(s) {sorted(extra)}, "
                f"which are not playing (playing: {sorted(live)})"
            )
        if missing:
            raise ValueError(
                f"agent {agent.name!r} returned no action for slot(s) {sorted(missing)}"
            )
        results = step_some({s: actions[s] for s in live})
        for slot, (obs, reward, terminated, truncated, info) in results.items():
            pos, start_info, acts = live[slot]
            acts.append(actions[slot])
            observations[slot] = obs
            if terminated or truncated:
                stats = stats_of(slot) if stats_of is not None else {}
                question = examples[todo[pos]].question
                record = episode_record(
                    start_info, info, question=question, reward=reward, actions=acts, stats=stats
                )
                episode = cast(SearchQAEnv, envs[slot].unwrapped).episode
                record.log = [list(pair) for pair in episode.log] if episode is not None else []
                records[pos] = record
                if on_episode is not None:
                    on_episode(record)
                del live[slot], observations[slot]
                free.append(slot)
    return [records[p] for p in range(len(todo))]
