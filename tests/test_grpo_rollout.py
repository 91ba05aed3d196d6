"""Token-in-token-out rollouts with a tiny random model and the real env, index and tokenizer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.grpo.policy import token_logprobs  # noqa: E402
from research_agents.grpo.rollout import rollout  # noqa: E402
from research_agents.models import load_model, load_tokenizer  # noqa: E402

from research_env.vector import SearchQAVectorEnv  # noqa: E402


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    tok = load_tokenizer("tiny")
    model = load_model("tiny")
    return model, tok


def _vec(tok, n: int = 4, **kw):  # type: ignore[no-untyped-def]
    return SearchQAVectorEnv(
        n, split="dev", template="research_compact", top_k=2, max_turns=2, tokenizer=tok, **kw
    )


def test_generator_logprobs_equal_what_the_trainer_scores(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    gen = HFGenerator(model, tok)
    prompts = [tok.encode("What is the capital of Peru?"), tok.encode("Hi")]
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=12, temperature=1.0, seed=3))
    for prompt, out in zip(prompts, outs):
        ids = torch.tensor([prompt + out.token_ids])
        score = torch.zeros_like(ids)
        score[0, len(prompt) :] = 1
        logp, _ = token_logprobs(model, ids, torch.ones_like(ids), score)
        assert logp[0, len(prompt) :].tolist() == pytest.approx(out.logprobs, abs=1e-4)


def test_generation_is_seeded_and_greedy_is_batch_invariant(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    gen = HFGenerator(model, tok)
    prompts = [tok.encode("Question one"), tok.encode("A longer second question here")]
    p = SamplingParams(max_new_tokens=10, temperature=1.0, seed=11)
    assert [o.token_ids for o in gen.generate(prompts, p)] == [
        o.token_ids for o in gen.generate(prompts, p)
    ]
    greedy = SamplingParams(max_new_tokens=10, temperature=0.0)
    together = gen.generate([prompts[0], prompts[1], prompts[0]], greedy)  # shared prefill
    alone = [gen.generate([q], greedy)[0] for q in prompts]
    assert [o.token_ids for o in together] == [o.token_ids for o in [*alone, alone[0]]]
    assert together[0].logprobs == pytest.approx(alone[0].logprobs, abs=1e-4)


def test_stop_strings_end_generation_and_are_kept(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    gen = HFGenerator(model, tok)
    # stop on a frequent character so a random model hits it quickly
    outs = gen.generate(
        [tok.encode("abc")] * 8,
        SamplingParams(max_new_tokens=40, temperature=1.0, stop=("e",), seed=0),
    )
    for o in outs:
        text = tok.decode(o.token_ids)
        if o.finish_reason == "stop":
            assert o.stop_string == "e" and "e" in text
            assert "e" not in tok.decode(o.token_ids[:-1])
        else:
            assert o.finish_reason in ("eos", "length")


def test_rollout_ids_are_prompt_sampled_and_observation_tokens(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    vec = _vec(tok)
    gen = HFGenerator(model, tok)
    params = SamplingParams(max_new_tokens=6, temperature=1.0, stop=("</search>", "</answer>"))
    trajs, stats = rollout(
        vec,
        gen,
        tok,
        [0, 0, 5, 5],
        params,
        group_ids=[0, 0, 1, 1],
        response_prefix="<search> capital",
        final_prefix="<answer>",
        max_response_tokens=300,
        seed=1,
    )
    assert stats.generate_calls >= 1 and stats.generated_tokens == sum(
        t.num_generated for t in trajs
    )
    for t in trajs:
        assert t.prompt_ids == tok.encode(
            vec.envs[0].template.render(vec.envs[0].examples[t.question_index].question, tok),
            add_special_tokens=False,
        )
        assert len(t.response_ids) == len(t.loss_mask) == len(t.old_logprobs)
        assert all(lp == 0.0 for lp, m in zip(t.old_logprobs, t.loss_mask) if m == 0)
        # the forced prefix is there, untrained
        prefix = tok.encode("<search> capital", add_special_tokens=False)
        assert t.response_ids[: len(prefix)] == prefix and not any(t.loss_mask[: len(prefix)])
        # the policy scores exactly these ids with the recorded log-probs
        ids = torch.tensor([t.ids])
        score = torch.tensor([[0] * len(t.prompt_ids) + t.loss_mask])
        logp, _ = token_logprobs(model, ids, torch.ones_like(ids), score)
        sampled = [lp for lp, m in zip(logp[0, len(t.prompt_ids) :].tolist(), t.loss_mask) if m]
        assert sampled == pytest.approx(
            [lp for lp, m in zip(t.old_logprobs, t.loss_mask) if m], abs=1e-4
        )
    # a searching episode carries the observation tokenised once, with mask 0
    searched = [t for t in trajs if t.turns == 2]
    for t in searched:
        obs = vec.envs[0].template.format_observation  # noqa: F841 (documented shape)
        zero_runs = tok.decode([i for i, m in zip(t.response_ids, t.loss_mask) if m == 0])
        assert "<result>" in zero_runs and "</result>" in zero_runs


def test_rollout_token_budget_truncates(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    vec = _vec(tok, n=2)
    gen = HFGenerator(model, tok)
    params = SamplingParams(max_new_tokens=4, temperature=1.0, stop=("</search>",))
    trajs, _ = rollout(
        vec,
        gen,
        tok,
        [1, 2],
        params,
        response_prefix="<search> peru </search>",
        max_response_tokens=20,
        seed=0,
    )
    for t in trajs:
        assert len(t.response_ids) <= 20


def test_kv_reuse_across_turns_matches_a_full_prefill(tiny) -> None:  # type: ignore[no-untyped-def]
    model, tok = tiny
    reuse, plain = HFGenerator(model, tok, reuse_kv=True), HFGenerator(model, tok, reuse_kv=False)
    prompts = [tok.encode(f"Question number {i} about Peru") for i in range(6)]
    params = SamplingParams(max_new_tokens=30, temperature=0.0, stop=("e", "a", "o"))
    first = reuse.generate(prompts, params)
    stopped = [i for i, g in enumerate(first) if g.finish_reason == "stop"]
    assert stopped and len(reuse._kv_store) == len({tuple(prompts[i]) for i in stopped})
    # next turn: the same ids plus an "observation", as the rollout sends them
    observation = tok.encode(" <result> Lima </result>")
    follow = [prompts[i] + first[i].token_ids + observation for i in range(len(prompts))]
    with_cache = reuse.generate(follow, params)
    without = plain.generate(follow, params)
    assert [g.token_ids for g in with_cache] == [g.token_ids for g in without]
    for a, b in zip(with_cache, without):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
