"""The SB3 route: SearchQAChoiceEnv on the real Factbook world, real BM25, real MiniLM.

Fast tests: SB3's own env checker, determinism, text reaching the inner env and its reward
coming back, invalid actions, the proposer never seeing golden answers, the scoring policy. The
slow test trains PPO and compares it with a uniform random choice on held-out questions.
"""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="needs the sb3 extra")
pytest.importorskip("sentence_transformers", reason="needs the dense extra (MiniLM)")

import torch
from research_agents.baselines.readers import ShownPassage
from research_agents.sb3 import (
    CANDIDATE_FEATURES,
    CachedEmbedder,
    Candidate,
    ChoiceEnvConfig,
    HeuristicProposer,
    LLMProposer,
    ObsLayout,
    ProposalState,
    SearchQAChoiceEnv,
)
from research_agents.sb3.policy import CandidateScoringPolicy
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env

from research_env.data.factbook import load_factbook_world
from research_env.rewards import exact_match

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def embedder() -> CachedEmbedder:
    return CachedEmbedder()


def make_env(embedder: CachedEmbedder, **kwargs: object) -> SearchQAChoiceEnv:
    config = ChoiceEnvConfig(**{"split": "dev", **kwargs})  # type: ignore[arg-type]
    return SearchQAChoiceEnv(config, embedder=embedder)


def slot_of(env: SearchQAChoiceEnv, kind: str, predicate=lambda c: True) -> int:
    for i, c in enumerate(env.candidates):
        if c.kind == kind and predicate(c):
            return i
    raise AssertionError(f"no {kind} candidate among {env.candidates}")


# ------------------------------------------------------------------ SB3 / Gymnasium checks
def test_sb3_check_env_passes_without_warnings(embedder):
    env = make_env(embedder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)


def test_gymnasium_check_env_passes(embedder):
    from gymnasium.utils.env_checker import check_env as gym_check_env

    gym_check_env(make_env(embedder), skip_render_check=True)


def test_spaces_and_layout(embedder):
    env = make_env(embedder, num_candidates=12)
    assert env.action_space == gym.spaces.Discrete(12)
    layout = ObsLayout(12, 384)
    assert env.observation_space.shape == (layout.size,)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in env.observation_space
    q = obs[:384]
    assert np.isclose(np.linalg.norm(q), 1.0, atol=1e-4)  # a real, normalised embedding
    np.testing.assert_allclose(q, embedder.embed([env.inner.episode.example.question])[0])
    assert 1 <= len(info["candidates"]) <= 12
    assert info["action_mask"].sum() == len(info["candidates"])


# ------------------------------------------------------------------ determinism
def test_same_seed_same_episode(embedder):
    a, b = make_env(embedder), make_env(embedder)
    for env in (a, b):
        env.reset(seed=3)
    obs_a, info_a = a.reset(seed=11)
    obs_b, info_b = b.reset(seed=11)
    assert np.array_equal(obs_a, obs_b) and info_a["candidates"] == info_b["candidates"]
    for action in (1, 0, 2, 1):
        out_a, out_b = a.step(action), b.step(action)
        assert np.array_equal(out_a[0], out_b[0])
        assert out_a[1:4] == out_b[1:4]
        assert out_a[4]["action_text"] == out_b[4]["action_text"]
        if out_a[2] or out_a[3]:
            break
    other, _ = a.reset(seed=12)
    assert not np.array_equal(other, obs_a)


def test_shuffle_depends_on_seed_not_on_proposer_order(embedder):
    env = make_env(embedder)
    orders = set()
    for seed in range(8):
        env.reset(seed=seed, options={"index": 0})
        orders.add(tuple(env.candidates))
    assert len(orders) > 1  # same question, same candidates, different slots
    assert len({frozenset(o) for o in orders}) == 1


# ------------------------------------------------------------------ text in, reward out
def test_chosen_candidates_reach_inner_env_as_text_and_reward_comes_back(embedder):
    env = make_env(embedder)
    index = next(
        i for i, e in enumerate(env.examples) if e.question == "What is the capital of Afghanistan?"
    )
    env.reset(seed=0, options={"index": index})
    slot = slot_of(env, "search", lambda c: c.text == "What is the capital of Afghanistan?")
    _, reward, term, trunc, info = env.step(slot)
    assert (reward, term, trunc) == (0.0, False, False)
    assert info["action_type"] == "search"
    assert info["query"] == "What is the capital of Afghanistan?"
    assert "<search>What is the capital of Afghanistan?</search>" in env.inner.episode.response
    assert "Afghanistan — Government — Capital" in info["retrieved_titles"]
    # answers now include spans of the passages the inner env showed
    assert "Kabul" in info["candidates"]
    wrong = slot_of(env, "answer", lambda c: c.text not in ("Kabul",))
    wrong_text = env.candidates[wrong].text
    _, reward, term, _, info = env.step(wrong)
    assert term and info["prediction"] == wrong_text
    assert reward == float(exact_match(wrong_text, ["Kabul"])) == 0.0

    env.reset(seed=0, options={"index": index})
    env.step(slot_of(env, "search", lambda c: c.verbatim_question))
    _, reward, term, _, info = env.step(slot_of(env, "answer", lambda c: c.text == "Kabul"))
    assert term and reward == 1.0 and info["reward_components"]["em"] == 1.0
    assert info["action_text"].endswith("<answer>\\boxed{Kabul}</answer>")
    assert env.inner.episode.response.endswith("<answer>\\boxed{Kabul}</answer>")


def test_reward_preset_passes_through_and_search_cost(embedder):
    env = make_env(embedder, reward="f1", search_cost=0.05)
    env.reset(seed=0, options={"index": 0})
    _, reward, *_ = env.step(slot_of(env, "search"))
    assert reward == pytest.approx(-0.05)
    _, reward, _, _, info = env.step(slot_of(env, "answer"))
    assert reward == pytest.approx(info["reward_components"]["f1"])


def test_last_turn_offers_only_answers_and_episode_ends(embedder):
    env = make_env(embedder, max_turns=3)
    env.reset(seed=5)
    for _ in range(2):
        _, _, term, trunc, _ = env.step(slot_of(env, "search"))
        assert not (term or trunc)
    assert env.candidates and all(c.kind == "answer" for c in env.candidates)
    obs, _, term, trunc, info = env.step(0)
    assert term and not trunc and info["end_reason"] == "answer"
    assert not np.any(obs[env.layout.head_size :])  # no candidates after the end
    assert info["candidates"] == []


def test_template_without_boxed_answers(embedder):
    env = make_env(embedder, template="searchr1")
    env.reset(seed=0)
    text = env.candidates[slot_of(env, "answer")].text
    _, _, term, _, info = env.step(slot_of(env, "answer"))
    assert term and info["action_text"].endswith(f"<answer>{text}</answer>")
    assert info["prediction"] == text


# ------------------------------------------------------------------ invalid actions
def test_invalid_actions(embedder):
    env = make_env(embedder)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (-1, 16, 2.5, "1", True):
        with pytest.raises(ValueError, match=r"action: expected an int in \[0, 16\)"):
            env.step(bad)  # type: ignore[arg-type]
    env.step(np.int64(slot_of(env, "answer")))
    with pytest.raises(RuntimeError, match="over"):
        env.step(0)


def test_padding_slots_alias_real_candidates(embedder):
    env = make_env(embedder)
    obs, info = env.reset(seed=0, options={"index": 0})
    n = len(env.candidates)
    assert n < 16  # before any search there are few candidates
    lay, pad = env.layout, CANDIDATE_FEATURES.index("is_pad")
    slots = obs[lay.head_size :].reshape(16, lay.slot_size)
    assert slots[n, lay.embed_dim + pad] == 1.0 and slots[0, lay.embed_dim + pad] == 0.0
    np.testing.assert_array_equal(slots[n, : lay.embed_dim], slots[0, : lay.embed_dim])
    assert list(info["action_mask"]) == [True] * n + [False] * (16 - n)
    before = list(env.candidates)
    _, _, _, _, step_info = env.step(n + 1)  # a padding slot: real candidate 1 is taken
    assert step_info["padded_choice"] and step_info["chosen"] == before[1]
    assert step_info["chosen_slot"] == n + 1


# ------------------------------------------------------------------ no golden answers leak
def test_golden_answers_do_not_reach_candidates_or_observation(embedder):
    world = load_factbook_world()
    base = world.split("dev")[:20]
    altered = [dataclasses.replace(e, golden_answers=["zzz"]) for e in base]
    a = SearchQAChoiceEnv(ChoiceEnvConfig(dataset=base), embedder=embedder)
    b = SearchQAChoiceEnv(ChoiceEnvConfig(dataset=altered), embedder=embedder)
    for seed in range(4):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        done = False
        while not done:
            assert np.array_equal(obs_a, obs_b) and info_a["candidates"] == info_b["candidates"]
            obs_a, _, term, trunc, info_a = a.step(seed % 3)
            obs_b, *_, info_b = b.step(seed % 3)
            done = term or trunc


# ------------------------------------------------------------------ proposers
def test_heuristic_proposer_recombines_retrieved_entities():
    state = ProposalState(
        question="What is the currency of the country whose capital is Lima?",
        queries=("Lima capital",),
        results=(
            (
                ShownPassage("Peru — Government — Capital", "name: Lima; time difference: UTC-5"),
                ShownPassage(
                    "Peru — Geography — Elevation", "highest point: Nevado Huascaran 6,746 m"
                ),
            ),
        ),
        turn=1,
    )
    cands = HeuristicProposer().propose(state)
    searches = [c.text for c in cands if c.kind == "search"]
    answers = [c.text for c in cands if c.kind == "answer"]
    assert "Peru currency" in searches and "Lima capital" not in searches
    assert searches[0] == state.question
    assert answers[:3] == ["Peru", "Lima", "UTC-5"]
    assert "Nevado Huascaran" in answers
    peru = next(c for c in cands if c.text == "Peru currency")
    assert (peru.source_rank, peru.relation_index, peru.from_title) == (0, 0, True)
    last = HeuristicProposer().propose(dataclasses.replace(state, turn=3))
    assert last and all(c.kind == "answer" for c in last)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="num_candidates"):
        ChoiceEnvConfig(num_candidates=1)
    with pytest.raises(ValueError, match="search_cost"):
        ChoiceEnvConfig(search_cost=-1)
    with pytest.raises(ValueError, match="max_searches"):
        HeuristicProposer(max_searches=-2)
    with pytest.raises(ValueError, match=r"Candidate\.kind"):
        Candidate("think", "x")  # type: ignore[arg-type]


def test_unknown_question_type_is_rejected(embedder):
    with pytest.raises(ValueError, match=r"question_types.*\['capitol'\]"):
        make_env(embedder, question_types=("capitol",))
    env = make_env(embedder, question_types=("capital", "currency"))
    assert {e.metadata["type"] for e in env.examples} == {"capital", "currency"}


def test_llm_proposer_with_a_real_tiny_model(embedder):
    from research_agents.generation.hf import HFGenerator
    from research_agents.models import load_model, load_tokenizer

    tok, model = load_tokenizer("tiny"), load_model("tiny")
    proposer = LLMProposer(HFGenerator(model, tok), tok, num_samples=2)
    env = SearchQAChoiceEnv(ChoiceEnvConfig(split="dev"), proposer=proposer, embedder=embedder)
    env.reset(seed=0)
    assert env.candidates  # the random model's samples are malformed; the fallback fills in
    _, _, term, _, info = env.step(slot_of(env, "answer"))
    assert term and info["action_type"] == "answer"


# ------------------------------------------------------------------ the SB3 policy
def test_scoring_policy_is_permutation_equivariant(embedder):
    env = make_env(embedder)
    env.reset(seed=0)
    obs, *_ = env.step(slot_of(env, "search"))  # a step with many candidates
    policy = CandidateScoringPolicy(env.observation_space, env.action_space, lambda _: 1e-3)
    lay = env.layout
    perm = np.random.default_rng(0).permutation(lay.num_candidates)
    slots = obs[lay.head_size :].reshape(lay.num_candidates, lay.slot_size)
    permuted = np.concatenate([obs[: lay.head_size], slots[perm].ravel()])
    with torch.no_grad():
        batch = torch.as_tensor(np.stack([obs, permuted]))
        logits = policy.get_distribution(batch).distribution.logits
        values = policy.predict_values(batch)
    torch.testing.assert_close(logits[1], logits[0][perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", [CandidateScoringPolicy, "MlpPolicy"])
def test_ppo_trains_saves_and_loads(embedder, tmp_path, policy):
    env = make_env(embedder, question_types=("capital",))
    model = PPO(policy, env, n_steps=16, batch_size=8, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(16)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
    model.save(tmp_path / "ppo")
    again = PPO.load(tmp_path / "ppo", device="cpu")
    assert type(again.policy) is type(model.policy)
    assert again.predict(obs, deterministic=True)[0] == action


# ------------------------------------------------------------------ batching and caching
def test_choice_vec_env_matches_dummy_vec_env(embedder):
    from research_agents.sb3.vec import ChoiceVecEnv
    from stable_baselines3.common.vec_env import DummyVecEnv

    fns = [lambda: make_env(embedder, max_turns=2) for _ in range(3)]
    batched, plain = ChoiceVecEnv(fns), DummyVecEnv(fns)  # type: ignore[arg-type]
    for vec in (batched, plain):
        vec.seed(5)
    obs_b, obs_p = batched.reset(), plain.reset()
    rng = np.random.default_rng(0)
    dones = 0
    for _ in range(6):
        np.testing.assert_array_equal(obs_b, obs_p)
        actions = rng.integers(0, 16, size=3)
        obs_b, rew_b, done_b, info_b = batched.step(actions)
        obs_p, rew_p, done_p, info_p = plain.step(actions)
        np.testing.assert_array_equal(rew_b, rew_p)
        np.testing.assert_array_equal(done_b, done_p)
        for ib, ip in zip(info_b, info_p):
            assert ib["action_text"] == ip["action_text"]
            assert ib["candidates"] == ip["candidates"]
            if "terminal_observation" in ip:
                np.testing.assert_array_equal(
                    ib["terminal_observation"], ip["terminal_observation"]
                )
        dones += int(done_b.sum())
    assert dones >= 3  # episodes ended and restarted (max_turns=2)


def test_embedder_cache_saves_and_loads(embedder, tmp_path):
    texts = ["Peru capital", "Lima", "What is the currency of Peru?"]
    vectors = embedder.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    path = embedder.save(tmp_path / "emb.npz")
    fresh = CachedEmbedder(path=path)
    assert len(fresh) == len(embedder)
    np.testing.assert_array_equal(fresh.embed(texts), vectors)
    assert (fresh.hits, fresh.misses) == (3, 0)  # nothing reached the encoder
    with pytest.raises(ValueError, match="model"):
        CachedEmbedder(model="some/other-model", path=path)
    small = CachedEmbedder(cache_size=2)
    small.embed(texts)
    assert len(small) == 2


# ------------------------------------------------------------------ learning (slow)
@pytest.mark.slow
def test_ppo_beats_random_choice_on_held_out_questions(embedder):
    from research_agents.eval.metrics import summarise
    from research_agents.sb3.train import (
        PPOSettings,
        evaluate,
        ppo_chooser,
        random_chooser,
        train_ppo,
    )

    one_hop = ("capital", "currency", "highest_point", "capital_reverse")
    settings = PPOSettings(total_timesteps=4_096, seed=0)
    model, stats = train_ppo(
        ChoiceEnvConfig(split="train", question_types=one_hop), settings, embedder
    )
    assert stats["timesteps"] >= 4_096
    env = SearchQAChoiceEnv(ChoiceEnvConfig(split="dev", question_types=one_hop), embedder=embedder)
    ppo = summarise(evaluate(env, ppo_chooser(model), seed=100))
    rand = [summarise(evaluate(env, random_chooser(s), seed=100)).metrics["em"] for s in range(3)]
    em = ppo.metrics["em"]
    print(f"dev 1-hop ({ppo.n} questions): EM PPO {em:.3f}, random {np.mean(rand):.3f}")
    assert em >= float(np.mean(rand)) + 0.25


def test_small_k_keeps_both_kinds(embedder):
    small, full = make_env(embedder, num_candidates=4), make_env(embedder)
    index = next(i for i, e in enumerate(full.examples) if e.metadata["type"] == "bridge")
    for env in (small, full):
        env.reset(seed=0, options={"index": index})
        env.step(slot_of(env, "search", lambda c: c.verbatim_question))
    offered = [c.kind for c in full.candidates]
    assert offered.count("search") >= 2 and offered.count("answer") >= 2
    kinds = [c.kind for c in small.candidates]
    assert len(kinds) == 4 and kinds.count("search") == 2 and kinds.count("answer") == 2
