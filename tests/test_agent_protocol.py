"""The Agent protocol and its driver, with the real env and BM25 index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from research_agents.baselines import ScriptedFactbookAgent

from research_env.agent import Agent, EpisodeRecord, Observation, PerEpisode, play
from research_env.env import SearchQAEnv
from research_env.vector import SearchQAVectorEnv


@pytest.fixture(scope="module")
def env() -> SearchQAEnv:
    return SearchQAEnv(split="test")


def _mixed_indices(env: SearchQAEnv, n_per_type: int = 2) -> list[int]:
    """Indices of several question types, so episodes of different lengths run together."""
    seen: dict[str, int] = {}
    picked: list[int] = []
    for i, ex in enumerate(env.examples):
        t = str(ex.metadata.get("type"))
        if seen.get(t, 0) < n_per_type:
            seen[t] = seen.get(t, 0) + 1
            picked.append(i)
    return picked


def test_single_and_vector_env_give_identical_records_in_order(env: SearchQAEnv) -> None:
    indices = _mixed_indices(env)
    assert len({env.examples[i].metadata["type"] for i in indices}) >= 3
    single = play(PerEpisode(ScriptedFactbookAgent, "scripted"), env, indices)
    vec = SearchQAVectorEnv(3, split="test")
    batched = play(PerEpisode(ScriptedFactbookAgent, "scripted"), vec, indices)
    assert [r.index for r in single] == indices
    assert [r.as_dict() for r in batched] == [r.as_dict() for r in single]
    # Episodes of different lengths ran side by side: some took more searches than others.
    assert len({r.searches for r in single}) >= 2
    # The scripted agent solves single-hop capital questions by searching.
    capitals = [r for r in single if r.question_type == "capital"]
    assert capitals and all(r.em == 1.0 and r.searches == 1 for r in capitals)
    assert all(r.golden_answers for r in single)


class AlwaysParis:
    """A batched agent written against the protocol directly; reports a per-episode stat."""

    name = "always-paris"
    answer = "Paris"

    def __init__(self) -> None:
        self.turns: dict[int, int] = {}

    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        self.turns[slot] = 0

    def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
        for slot in observations:
            self.turns[slot] += 1
        return {s: f"<answer>\\boxed{{{self.answer}}}</answer>" for s in observations}

    def episode_stats(self, slot: int) -> Mapping[str, float]:
        return {"my_turns": float(self.turns[slot])}


def test_protocol_agent_stats_and_callback(env: SearchQAEnv) -> None:
    agent = AlwaysParis()
    agent.answer = env.examples[5].golden_answers[0]
    assert isinstance(agent, Agent)
    ended: list[EpisodeRecord] = []
    records = play(agent, SearchQAVectorEnv(2, split="test"), [5, 0, 1], on_episode=ended.append)
    assert sorted(r.index for r in ended) == [0, 1, 5]
    assert records[0].em == 1.0 and records[0].prediction == agent.answer
    assert records[1].em == 0.0
    assert all(r.searches == 0 and r.stats == {"my_turns": 1.0} for r in records)


def test_missing_action_is_a_clear_error(env: SearchQAEnv) -> None:
    class Forgetful(AlwaysParis):
        name = "forgetful"

        def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
            return {}

    with pytest.raises(ValueError, match=r"'forgetful' returned no action for slot\(s\) \[0\]"):
        play(Forgetful(), env, [0])


def test_hostile_actions_end_episodes_without_crashing(env: SearchQAEnv) -> None:
    class Hostile:
        name = "hostile"

        def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
            pass

        def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
            junk = ["", "<search>", "</answer><answer>", "\x00" * 10, "<search>" + "x" * 10**5]
            return {
                s: junk[(s + len(o["observation"])) % len(junk)] for s, o in observations.items()
            }

    records = play(Hostile(), SearchQAVectorEnv(4, split="test"), range(6))
    assert len(records) == 6
    assert all(r.em == 0.0 and r.end_reason in {"invalid", "max_turns"} for r in records)


def test_same_seed_same_records(env: SearchQAEnv) -> None:
    a = play(PerEpisode(ScriptedFactbookAgent, "s"), env, range(5), seed=3)
    b = play(PerEpisode(ScriptedFactbookAgent, "s"), SearchQAEnv(split="test"), range(5), seed=3)
    assert [r.as_dict() for r in a] == [r.as_dict() for r in b]


def test_wrapped_env_is_stepped_through_its_wrappers(env: SearchQAEnv) -> None:
    import gymnasium as gym

    from research_env.wrappers import RecordEpisodeStatistics

    wrapped = RecordEpisodeStatistics(gym.make("SearchQA-v0", split="test"))
    records = play(PerEpisode(ScriptedFactbookAgent, "s"), wrapped, range(3))
    plain = play(PerEpisode(ScriptedFactbookAgent, "s"), env, range(3))
    assert [r.as_dict() for r in records] == [r.as_dict() for r in plain]
    assert len(wrapped.return_queue) == 3  # the wrapper saw every episode end


def test_actions_for_idle_slots_are_refused(env: SearchQAEnv) -> None:
    class Eager(AlwaysParis):
        name = "eager"

        def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
            return {**super().act(observations), 7: "<search>x</search>"}

    with pytest.raises(ValueError, match=r"slot\(s\) \[7\], which are not playing"):
        play(Eager(), env, [0])
