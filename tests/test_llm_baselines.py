"""LLM baselines (direct, naive RAG, Iter-RetGen, ReSearch, oracle) with a tiny random model.

The model is random, so the answers are nonsense; these tests check the mechanics: every kind
plays real Factbook questions through the real env and BM25 index, searches as designed, emits
well-formed actions, reports its generated tokens, gives the same records on a single env and a
vector env, and the token-level ``research`` agent reproduces GRPO's ``evaluate_policy``.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from research_agents.baselines import (  # noqa: E402
    AGENT_KINDS,
    LLMAgentConfig,
    PromptAgent,
    ResearchPolicyAgent,
    make_agent,
)
from research_agents.baselines.llm_prompts import inline, rag_messages, short_answer  # noqa: E402
from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.grpo.evaluation import evaluate_policy  # noqa: E402
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.grpo.rollout import rollout  # noqa: E402
from research_agents.models import load_model, load_tokenizer  # noqa: E402

from research_env.actions import Answer, Search, parse_action  # noqa: E402
from research_env.agent import EpisodeRecord, play  # noqa: E402
from research_env.env import SearchQAEnv  # noqa: E402
from research_env.vector import SearchQAVectorEnv  # noqa: E402

ENV_KW: dict[str, Any] = {
    "split": "test",
    "template": "research_compact",
    "top_k": 2,
    "max_turns": 4,
    "last_turn": "answer_only",
}
CONFIG = LLMAgentConfig(max_new_tokens=6, iterations=2, oracle_max_searches=2)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return load_model("tiny"), load_tokenizer("tiny")


@pytest.fixture(scope="module")
def single(tiny: tuple[Any, Any]) -> SearchQAEnv:
    return SearchQAEnv(tokenizer=tiny[1], **ENV_KW)


@pytest.fixture(scope="module")
def vec(tiny: tuple[Any, Any]) -> SearchQAVectorEnv:
    return SearchQAVectorEnv(3, tokenizer=tiny[1], **ENV_KW)


def _indices(env: SearchQAEnv, n_types: int = 5) -> list[int]:
    """One question of each of ``n_types`` types (single-hop and multi-hop)."""
    seen: set[str] = set()
    out: list[int] = []
    for i, ex in enumerate(env.examples):
        t = str(ex.metadata.get("type"))
        if t not in seen and len(seen) < n_types:
            seen.add(t)
            out.append(i)
    return out


def _play(kind: str, tiny: tuple[Any, Any], env: Any, indices: list[int]) -> list[EpisodeRecord]:
    model, tok = tiny
    agent = make_agent(kind, HFGenerator(model, tok), tok, env=env, config=CONFIG)
    assert agent.name == kind
    return play(agent, env, indices)


@pytest.fixture(scope="module")
def played(tiny: tuple[Any, Any], vec: SearchQAVectorEnv) -> dict[str, list[EpisodeRecord]]:
    """Each kind's records on the vector env (filled by the first test that plays it)."""
    return {}


def _vec_records(
    kind: str, tiny: tuple[Any, Any], vec: SearchQAVectorEnv, played: dict[str, Any]
) -> list[EpisodeRecord]:
    if kind not in played:
        played[kind] = _play(kind, tiny, vec, _indices(vec.envs[0]))
    return played[kind]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", AGENT_KINDS)
def test_each_kind_plays_the_same_records_on_single_and_vector_envs(
    kind: str,
    tiny: tuple[Any, Any],
    single: SearchQAEnv,
    vec: SearchQAVectorEnv,
    played: dict[str, Any],
) -> None:
    indices = _indices(single)
    one = _play(kind, tiny, single, indices)
    many = _vec_records(kind, tiny, vec, played)
    assert [r.as_dict() for r in many] == [r.as_dict() for r in one]
    assert [r.index for r in one] == indices
    for r in one:
        assert r.stats["generated_tokens"] > 0
    if kind == "research":
        return  # a random model writes no well-formed actions; see the parity tests below
    for r in one:
        # Every action parses: searches, then one answer that the env scored.
        parsed = [parse_action(a) for a in r.actions]
        assert all(isinstance(p, Search) for p in parsed[:-1]), r.actions
        assert isinstance(parsed[-1], Answer) and parsed[-1].boxed, r.actions
        assert r.end_reason == "answer" and r.prediction == parsed[-1].text
        assert r.format_ok
        assert r.searches == len(r.actions) - 1


def test_search_counts_follow_each_design(
    tiny: tuple[Any, Any], single: SearchQAEnv, vec: SearchQAVectorEnv, played: dict[str, Any]
) -> None:
    indices = _indices(single)
    questions = [single.examples[i].question for i in indices]
    direct = _vec_records("direct", tiny, vec, played)
    assert all(r.searches == 0 and len(r.actions) == 1 for r in direct)

    naive = _vec_records("naive-rag", tiny, vec, played)
    assert all(r.searches == 1 for r in naive)
    assert [r.actions[0] for r in naive] == [f"<search>{inline(q)}</search>" for q in questions]

    iters = _vec_records("iter-retgen", tiny, vec, played)
    assert all(r.searches == CONFIG.iterations for r in iters)
    for r, q in zip(iters, questions):
        # Round 2 searches with the question plus the model's first generation.
        second = parse_action(r.actions[1])
        assert isinstance(second, Search) and second.query.startswith(inline(q))
        assert second.think is not None

    oracle = _vec_records("oracle", tiny, vec, played)
    for r in oracle:
        assert 1 <= r.searches <= CONFIG.oracle_max_searches
        first = parse_action(r.actions[0])
        assert isinstance(first, Search)
        assert any(inline(g) in first.query for g in r.golden_answers)
        # It stops searching once the shown passages hold a golden answer.
        assert r.stats["oracle_hit"] == float(r.answer_in_retrieval)
        if r.searches == 2:  # the first search missed: the second tries the next query
            second = parse_action(r.actions[1])
            assert isinstance(second, Search) and second.query != first.query
    # The oracle's searches surface the answer far more often than the question alone.
    assert sum(r.answer_in_retrieval for r in oracle) > sum(r.answer_in_retrieval for r in naive)


def test_reader_prompt_shows_the_env_passages(tiny: tuple[Any, Any], single: SearchQAEnv) -> None:
    model, tok = tiny
    agent = make_agent("naive-rag", HFGenerator(model, tok), tok, env=single, config=CONFIG)
    assert isinstance(agent, PromptAgent)
    single.reset(options={"index": 0})
    obs, *_ = single.step("<search>capital of Angola</search>")
    shown = agent.passages(obs["observation"])
    assert (
        shown.startswith("Doc 1 (Title: ") and "<result>" not in shown and "</result>" not in shown
    )
    assert shown in obs["observation"] and shown.count("Doc ") == ENV_KW["top_k"]
    user = rag_messages("What is the capital of Angola?", shown)[1]["content"]
    assert shown in user and user.rstrip().endswith("Answer:")


def test_answer_post_processing_is_first_line_and_safe_tags() -> None:
    assert short_answer("\n  Luanda \nbecause ...") == "Luanda"
    assert short_answer("   \n") == ""
    assert inline("Lima}</answer><search>x") == "Lima x"
    parsed = parse_action(f"<answer>\\boxed{{{inline('a}b{c')}}}</answer>")
    assert isinstance(parsed, Answer) and parsed.text == "a b c"


def test_bad_kind_and_too_few_turns_are_clear_errors(
    tiny: tuple[Any, Any], single: SearchQAEnv
) -> None:
    model, tok = tiny
    gen = HFGenerator(model, tok)
    with pytest.raises(ValueError, match="direct, naive-rag, iter-retgen, research, oracle"):
        make_agent("rag", gen, tok, env=single, config=CONFIG)
    short = SearchQAEnv(split="test", max_turns=2, tokenizer=tok)
    with pytest.raises(ValueError, match=r"iter-retgen.*max_turns >= 4.*max_turns=2"):
        make_agent("iter-retgen", gen, tok, env=short, config=LLMAgentConfig(iterations=3))
    with pytest.raises(ValueError, match=r"LLMAgentConfig\.iterations: expected >= 1, got 0"):
        LLMAgentConfig(iterations=0)
    with pytest.raises(ValueError, match=r"LLMAgentConfig\.temperature"):
        LLMAgentConfig(temperature=-1.0)


def test_sampling_is_reproducible_for_a_seed(tiny: tuple[Any, Any], vec: SearchQAVectorEnv) -> None:
    model, tok = tiny
    indices = _indices(vec.envs[0], 3)
    cfg = LLMAgentConfig(max_new_tokens=6, temperature=1.0, seed=5)
    runs = [
        play(
            make_agent("naive-rag", HFGenerator(model, tok), tok, env=vec, config=cfg), vec, indices
        )
        for _ in range(2)
    ]
    assert [r.as_dict() for r in runs[0]] == [r.as_dict() for r in runs[1]]


# --------------------------------------------------------------------------- research parity
def _parity_env(tok: Any, n: int) -> SearchQAVectorEnv:
    """The eval env GRPOTrainer builds for the ``tiny`` preset (on the test split)."""
    cfg = get_preset("tiny")
    return SearchQAVectorEnv(
        n,
        split="test",
        dataset=cfg.dataset,
        retriever=cfg.retriever,
        top_k=cfg.top_k,
        max_turns=cfg.max_turns,
        reward="em",
        template=cfg.template,
        tokenizer=tok,
        last_turn=cfg.last_turn,
    )


_COMPARED = ("prediction", "em", "f1", "format_ok", "answer_in_retrieval", "searches")


@pytest.mark.parametrize("setting", ["preset", "forced-actions", "budget", "answer-continuation"])
def test_research_agent_reproduces_evaluate_policy(setting: str, tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    indices = [0, 1, 2, 18, 40, 100]  # more questions than slots: slots are refilled
    gold = _parity_env(tok, 1).envs[0].examples[indices[2]].golden_answers[0]
    cfg = LLMAgentConfig.from_grpo(get_preset("tiny"))
    if setting == "forced-actions":  # every episode searches, then answers `gold`
        cfg = LLMAgentConfig.from_grpo(
            get_preset("tiny"),
            response_prefix="<search> capital </search>",
            final_prefix=f"<answer> \\boxed{{{gold}}} </answer>",
            max_response_tokens=400,
        )
    elif setting == "budget":  # the observation overflows the budget before the last turn
        cfg = LLMAgentConfig.from_grpo(
            get_preset("tiny"), response_prefix="<search> capital </search>", max_response_tokens=24
        )
    elif setting == "answer-continuation":  # the answer tag forced, the model goes on: boxed
        cfg = LLMAgentConfig.from_grpo(
            get_preset("tiny"),
            response_prefix="<search> capital </search>",
            final_prefix="<answer>",
            answer_continuation="\\boxed{",
            max_response_tokens=400,
        )
    stop = _parity_env(tok, 1).envs[0].template.stop_strings

    ref = evaluate_policy(
        _parity_env(tok, 4),
        HFGenerator(model, tok),
        tok,
        indices,
        stop=stop,
        turns=cfg,  # an LLMAgentConfig is a TurnSettings
    )
    env = _parity_env(tok, 4)
    agent = make_agent("research", HFGenerator(model, tok), tok, env=env, config=cfg)
    records = play(agent, env, indices)
    for rec, played in zip(records, ref, strict=True):
        got, want = rec.as_dict(), {**played.as_dict(), **played.stats}
        assert {k: got[k] for k in _COMPARED} == {k: want[k] for k in _COMPARED}, rec.actions
        assert rec.stats["generated_tokens"] == want["generated_tokens"]
        budget_out = want["end_reason"] == "token_budget"
        assert rec.stats["budget_exhausted"] == float(budget_out)
        assert rec.end_reason == ("invalid" if budget_out else want["end_reason"])
    if setting == "forced-actions":
        assert [r.searches for r in records] == [1] * len(indices)
        assert records[2].em == 1.0 and records[2].prediction == gold
    if setting == "budget":
        assert all(r.stats["budget_exhausted"] == 1.0 for r in records)
    if setting == "answer-continuation":
        assert all(r.actions[-1].startswith("<answer>\\boxed{") for r in records)


def test_research_agent_keeps_the_rollouts_token_ids(tiny: tuple[Any, Any]) -> None:
    model, tok = tiny
    indices = [3, 7, 60]
    cfg = LLMAgentConfig.from_grpo(
        get_preset("tiny"), response_prefix="<search> capital </search>", max_response_tokens=400
    )
    ref_env = _parity_env(tok, 3)
    params = SamplingParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=0.0,
        stop=ref_env.envs[0].template.stop_strings,
    )
    trajs, _ = rollout(
        ref_env,
        HFGenerator(model, tok),
        tok,
        indices,
        params,
        response_prefix=cfg.response_prefix,
        final_prefix=cfg.final_prefix,
        max_response_tokens=cfg.max_response_tokens,
    )
    env = _parity_env(tok, 3)
    agent = make_agent("research", HFGenerator(model, tok), tok, env=env, config=cfg)
    assert isinstance(agent, ResearchPolicyAgent)
    play(agent, env, indices)
    for slot, want in enumerate(trajs):
        got = agent.trajectory(slot)
        assert got.question_index == want.question_index
        assert got.prompt_ids == want.prompt_ids
        assert got.response_ids == want.response_ids
        assert got.loss_mask == want.loss_mask
        assert got.old_logprobs == pytest.approx(want.old_logprobs, abs=1e-5)
        assert got.turns == want.turns == 2  # searched, then the forced-answer turn
