"""Wrappers: episode statistics, chat messages and token ids, on the real env and BM25 index."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from research_agents.baselines.scripted import ScriptedFactbookAgent

import research_env  # noqa: F401  (registers SearchQA-v0)
from research_env.agent import PerEpisode, play
from research_env.data.types import QAExample
from research_env.env import SearchQAEnv
from research_env.wrappers import ChatMessages, Conversation, RecordEpisodeStatistics, TokenIds

PERU = QAExample("q-peru", "What is the capital of Peru?", ["Lima"], {"type": "capital"})
CHILE = QAExample("q-chile", "What is the capital of Chile?", ["Santiago"], {"type": "capital"})
SEARCH_PERU = "<think>I should look it up.</think><search>capital of Peru</search>"
ANSWER_LIMA = "<think>The passage says Lima.</think><answer>\\boxed{Lima}</answer>"
HOSTILE = [
    "",
    "<search>",
    "</answer><answer>",
    "\x00" * 10,
    "<search>" + "x" * 10**5,
    "\ud800<search>q\udfff</search>",
    "<answer>\\boxed{" + "{" * 1000 + "</answer>",
    "<search> <result>fake</result> </search>",
    "🙂" * 50,
]


def _make(**kw: Any) -> gym.Env[Any, Any]:
    return gym.make("SearchQA-v0", dataset=[PERU, CHILE], **kw)


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    from research_agents.models import load_tokenizer

    return load_tokenizer("smollm2")


def _check_env(env: gym.Env[Any, Any]) -> None:
    """Gymnasium's checker with warnings as errors, except its note that the env is wrapped."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
        check_env(env, skip_render_check=True, skip_close_check=True)


# ---------------------------------------------------------------------------- episode statistics
def test_statistics_at_episode_end_only_and_queues() -> None:
    env = RecordEpisodeStatistics(_make(), buffer_length=2)
    env.reset(options={"question_id": "q-peru"})
    _, _, _, _, info = env.step(SEARCH_PERU)
    assert "episode" not in info
    _, reward, terminated, _, info = env.step(ANSWER_LIMA)
    assert terminated and reward == 1.0
    assert info["episode"] == {
        "r": 1.0,
        "l": 2,
        "searches": 1,
        "em": 1.0,
        "f1": 1.0,
        "sub_em": 1.0,
        "format_ok": True,
        "answer_in_retrieval": True,
        "end_reason": "answer",
        "retrieval_failed": False,
        "question_id": "q-peru",
    }
    env.reset(options={"question_id": "q-chile"})
    _, _, terminated, _, info = env.step("no tags at all")
    assert terminated and info["episode"]["end_reason"] == "invalid"
    assert (info["episode"]["em"], info["episode"]["l"], info["episode"]["searches"]) == (0.0, 1, 0)
    assert env.summary() == pytest.approx(
        {
            "episodes": 2,
            "return": 0.5,
            "length": 1.5,
            "searches": 0.5,
            "em": 0.5,
            "f1": 0.5,
            "format_ok": 0.5,
            "answered": 0.5,
        }
    )
    env.reset(options={"question_id": "q-chile"})
    env.step("<answer>\\boxed{Santiago}</answer>")
    assert env.episode_count == 3
    assert list(env.return_queue) == [0.0, 1.0] and list(env.length_queue) == [1, 1]
    assert [s["question_id"] for s in env.episode_queue] == ["q-chile", "q-chile"]
    assert len(env.time_queue) == 2 and all(t >= 0 for t in env.time_queue)


def test_statistics_match_the_driver_records() -> None:
    """The wrapper's numbers are the ones `play` records, episode by episode."""
    plain = SearchQAEnv(split="dev")
    seen: dict[str, int] = {}
    indices = []  # two questions of every type: one, two and three searches
    for i, ex in enumerate(plain.examples):
        kind = str(ex.metadata.get("type"))
        if seen.setdefault(kind, 0) < 2:
            seen[kind] += 1
            indices.append(i)
    records = play(PerEpisode(ScriptedFactbookAgent, "scripted"), plain, indices)
    env = RecordEpisodeStatistics(gym.make("SearchQA-v0", split="dev"), buffer_length=100)
    for position, index in enumerate(indices):
        obs, _ = env.reset(seed=position, options={"index": index})
        agent = ScriptedFactbookAgent()
        agent.reset(obs["question"])
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(agent.act(obs["observation"]))
            done = terminated or truncated
    assert len(env.episode_queue) == len(records)
    for stats, rec in zip(env.episode_queue, records):
        assert (stats["r"], stats["l"], stats["searches"]) == (rec.reward, rec.turns, rec.searches)
        assert (stats["em"], stats["f1"], stats["format_ok"]) == (rec.em, rec.f1, rec.format_ok)
        assert (stats["end_reason"], stats["question_id"]) == (rec.end_reason, rec.question_id)
    assert len({s["searches"] for s in env.episode_queue}) >= 2  # multi-hop questions included


def test_statistics_checker_and_bad_arguments() -> None:
    _check_env(RecordEpisodeStatistics(_make()))
    with pytest.raises(ValueError, match="buffer_length >= 1, got 0"):
        RecordEpisodeStatistics(_make(), buffer_length=0)


# --------------------------------------------------------------------------------- chat messages
def test_chat_messages_are_the_template_messages_then_turns() -> None:
    env = ChatMessages(_make())
    template = env.unwrapped.template  # type: ignore[attr-defined]
    messages, _ = env.reset(options={"question_id": "q-peru"})
    assert messages == template.messages(PERU.question)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == PERU.question
    messages, _, _, _, _ = env.step(SEARCH_PERU)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == SEARCH_PERU
    assert messages[3]["content"].startswith(" <result>") and "Lima" in messages[3]["content"]
    messages, reward, terminated, _, _ = env.step(ANSWER_LIMA)
    assert terminated and reward == 1.0
    assert [m["role"] for m in messages][-2:] == ["user", "assistant"]  # no empty observation
    assert messages[-1] == {"role": "assistant", "content": ANSWER_LIMA}
    assert messages in env.observation_space


def test_chat_messages_render_to_the_env_prompt(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Given to the tokenizer's chat template, the reset messages give the env's own prompt."""
    inner = _make(tokenizer=tokenizer)
    env = ChatMessages(inner)
    messages, _ = env.reset(options={"question_id": "q-chile"})
    prompt = inner.unwrapped.episode.prompt  # type: ignore[attr-defined]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == prompt
    # a base-model template is one user message holding the whole prompt
    env = ChatMessages(_make(template="research_base"))
    messages, _ = env.reset(options={"question_id": "q-chile"})
    assert messages == [{"role": "user", "content": env.unwrapped.episode.prompt}]  # type: ignore[attr-defined]


def test_chat_messages_tool_role_and_fresh_lists() -> None:
    env = ChatMessages(_make(invalid_action="correct", max_turns=3), observation_role="tool")
    first, _ = env.reset(options={"question_id": "q-peru"})
    first[0]["content"] = "tampered"
    first.append({"role": "user", "content": "injected"})
    messages, _, terminated, _, _ = env.step("oops, no tags")
    assert not terminated
    assert messages[0]["content"] != "tampered" and len(messages) == 4
    assert messages[-1]["role"] == "tool" and "invalid" in messages[-1]["content"]
    assert messages in env.observation_space
    assert messages not in ChatMessages(_make()).observation_space  # "tool" is not admitted there
    _check_env(env)


def test_conversation_space_samples_are_members_and_seeded() -> None:
    space = Conversation(("user", "assistant"), max_length=64, seed=3)
    samples = [space.sample() for _ in range(20)]
    assert all(s in space for s in samples)
    again = Conversation(("user", "assistant"), max_length=64, seed=3)
    assert samples == [again.sample() for _ in range(20)]
    assert len({len(s) for s in samples}) > 1 and any(s for s in samples)
    assert space.from_jsonable(space.to_jsonable(samples)) == samples
    assert [{"role": "user", "content": "x" * 65}] not in space
    assert [{"role": "user", "content": "x", "name": "bob"}] not in space
    with pytest.raises(ValueError, match="sample 0 is not a conversation"):
        space.from_jsonable([[{"role": "system", "content": "x"}]])


# ------------------------------------------------------------------------------------- token ids
def test_token_ids_decode_back_and_follow_the_rollout_rule(tokenizer) -> None:  # type: ignore[no-untyped-def]
    env = TokenIds(_make(tokenizer=tokenizer), tokenizer)
    assert env.vocab_size == len(tokenizer)
    obs, _ = env.reset(options={"question_id": "q-peru"})
    assert obs["prompt_ids"].dtype == np.int64 and obs["observation_ids"].size == 0
    assert obs["prompt_ids"].tolist() == tokenizer.encode(obs["prompt"], add_special_tokens=False)
    assert tokenizer.decode(obs["prompt_ids"].tolist()) == obs["prompt"]
    prompt_ids = obs["prompt_ids"]
    obs, _, _, _, _ = env.step(SEARCH_PERU)
    assert "<result>" in obs["observation"]
    assert obs["observation_ids"].tolist() == tokenizer.encode(
        obs["observation"], add_special_tokens=False
    )
    assert tokenizer.decode(obs["observation_ids"].tolist()) == obs["observation"]
    assert np.array_equal(obs["prompt_ids"], prompt_ids) and obs["prompt_ids"] is not prompt_ids
    assert obs in env.observation_space
    obs, _, terminated, _, _ = env.step(ANSWER_LIMA)
    assert terminated and obs["observation_ids"].size == 0
    _check_env(env)


def test_token_ids_equal_what_the_grpo_rollout_trains_on(tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Prompt and observation ids are the very ids of a real rollout's trajectory."""
    pytest.importorskip("torch")
    from research_agents.generation.base import SamplingParams
    from research_agents.generation.hf import HFGenerator
    from research_agents.grpo.rollout import rollout
    from research_agents.models import load_model

    from research_env.vector import SearchQAVectorEnv

    kw: dict[str, Any] = {"template": "research_compact", "top_k": 2, "max_turns": 2}
    vec = SearchQAVectorEnv(1, dataset=[PERU, CHILE], tokenizer=tokenizer, **kw)
    # The forced prefix is a whole search action, so the first turn searches for "capital of
    # Peru" whatever the random model appends (the first closing tag decides).
    (traj,), _ = rollout(
        vec,
        HFGenerator(load_model("tiny"), tokenizer),
        tokenizer,
        [0],
        SamplingParams(max_new_tokens=3, temperature=1.0, stop=("</search>", "</answer>")),
        response_prefix=SEARCH_PERU,
        max_response_tokens=400,
        seed=0,
    )
    assert traj.turns == 2 and traj.info["num_searches"] == 1
    env = TokenIds(_make(tokenizer=tokenizer, **kw), tokenizer)
    obs, _ = env.reset(options={"index": 0})
    assert obs["prompt_ids"].tolist() == traj.prompt_ids
    obs, _, _, _, _ = env.step(SEARCH_PERU)
    # the trajectory: forced prefix (mask 0), sampled ids (mask 1), observation (mask 0), ...
    mask = traj.loss_mask
    start = mask.index(1)
    obs_start = start + mask[start:].index(0)
    obs_end = obs_start + mask[obs_start:].index(1)
    assert traj.response_ids[obs_start:obs_end] == obs["observation_ids"].tolist()


class _ListTokenizer:
    """A tokenizer without transformers: one id per character (code point modulo 100)."""

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) % 100 for c in text] + ([99] if add_special_tokens else [])


def test_token_ids_any_tokenizer_and_bad_ones() -> None:
    env = TokenIds(_make(), _ListTokenizer(), vocab_size=100)
    obs, _ = env.reset(options={"question_id": "q-peru"})
    assert obs["prompt_ids"].tolist() == [ord(c) % 100 for c in obs["prompt"]]  # no special id
    with pytest.raises(TypeError, match="pass vocab_size= to TokenIds"):
        TokenIds(_make(), _ListTokenizer())
    small = TokenIds(_make(), _ListTokenizer(), vocab_size=10)
    with pytest.raises(ValueError, match=r"returned id \d+, outside \[0, 10\)"):
        small.reset()
    with pytest.raises(TypeError, match="expected a tokenizer with encode"):
        TokenIds(_make(), object(), vocab_size=10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- composition
def _stack() -> RecordEpisodeStatistics[Any]:
    """Statistics over chat messages over token ids, with corrective observations."""
    inner = _make(invalid_action="correct", max_turns=3)
    return RecordEpisodeStatistics(ChatMessages(TokenIds(inner, _ListTokenizer(), vocab_size=100)))


def test_wrappers_compose_and_pass_the_checker() -> None:
    env = _stack()
    _check_env(env)
    messages, _ = env.reset(options={"question_id": "q-peru"})
    messages, _, _, _, _ = env.step(SEARCH_PERU)
    messages, reward, terminated, _, info = env.step(ANSWER_LIMA)
    assert terminated and reward == 1.0 and info["episode"]["searches"] == 1
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    _check_env(RecordEpisodeStatistics(TokenIds(_make(), _ListTokenizer(), vocab_size=100)))


def test_wrong_order_and_wrong_env_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="put TokenIds inside any wrapper that replaces"):
        TokenIds(ChatMessages(_make()), _ListTokenizer(), vocab_size=100)
    with pytest.raises(TypeError, match="ChatMessages needs the SearchQA observation dict"):
        ChatMessages(gym.make("CartPole-v1"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="observation_role 'user' or 'tool', got 'bot'"):
        ChatMessages(_make(), observation_role="bot")  # type: ignore[arg-type]


def test_same_seed_same_everything() -> None:
    def run(seed: int) -> list[Any]:
        env = _stack()
        out: list[Any] = []
        for episode in range(3):
            obs, _ = env.reset(seed=seed + episode)
            out.append(obs)
            for action in (SEARCH_PERU, ANSWER_LIMA):
                obs, reward, terminated, truncated, info = env.step(action)
                out.append((obs, reward, info.get("episode")))
                if terminated or truncated:
                    break
        return out

    assert run(5) == run(5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=200)), min_size=1))
def test_hostile_actions_never_crash_the_stack(actions: list[str]) -> None:
    env = _stack()
    obs, _ = env.reset(seed=0)
    episodes = 0
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs in env.observation_space
        if terminated or truncated:
            episodes += 1
            assert info["episode"]["l"] >= 1 and info["episode"]["r"] == reward
            obs, _ = env.reset()
    assert env.episode_count == episodes


def test_non_text_action_is_rejected_and_the_episode_goes_on() -> None:
    env = _stack()
    env.reset(options={"question_id": "q-peru"})
    with pytest.raises(TypeError, match="expected the action to be a str"):
        env.step(b"<search>bytes</search>")  # type: ignore[arg-type]
    messages, _, _, _, _ = env.step(SEARCH_PERU)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
