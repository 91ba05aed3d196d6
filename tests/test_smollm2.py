"""The real SmolLM2-135M-Instruct through the rollout, a couple of episodes (`make test-slow`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.grpo.policy import token_logprobs  # noqa: E402
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.grpo.rollout import rollout  # noqa: E402
from research_agents.models import load_model, load_tokenizer  # noqa: E402

from research_env.vector import SearchQAVectorEnv  # noqa: E402


@pytest.mark.slow
def test_smollm2_rollouts_search_and_score_consistently() -> None:
    cfg = get_preset("factbook-smollm2")
    tok = load_tokenizer("smollm2")
    model = load_model("smollm2")
    vec = SearchQAVectorEnv(
        2,
        split="dev",
        template=cfg.template,
        top_k=cfg.top_k,
        max_turns=cfg.max_turns,
        reward=cfg.reward,
        tokenizer=tok,
        last_turn=cfg.last_turn,
    )
    params = SamplingParams(
        max_new_tokens=24, temperature=0.0, stop=vec.envs[0].template.stop_strings
    )
    trajs, stats = rollout(
        vec,
        HFGenerator(model, tok),
        tok,
        [0, 1],
        params,
        response_prefix=cfg.response_prefix,
        final_prefix=cfg.final_prefix,
        max_response_tokens=cfg.max_response_tokens,
    )
    assert stats.generated_tokens > 0
    for t in trajs:
        # with "<search>" forced, SmolLM2 writes a query and closes the tag: the env searched
        assert t.info["num_searches"] == 1, t.info
        ids = torch.tensor([t.ids])
        score = torch.tensor([[0] * len(t.prompt_ids) + t.loss_mask])
        logp, _ = token_logprobs(model, ids, torch.ones_like(ids), score)
        got = [v for v, m in zip(logp[0, len(t.prompt_ids) :].tolist(), t.loss_mask) if m]
        want = [v for v, m in zip(t.old_logprobs, t.loss_mask) if m]
        assert got == pytest.approx(want, abs=2e-3)


@pytest.mark.slow
def test_smollm2_decode_kernels_and_bf16_sampler_agree_with_the_fp32_trainer() -> None:
    """fp32 with the decode kernels samples what the plain loop samples; a bf16 copy samples
    with log-probs close to the fp32 trainer's (the mismatch TIS corrects stays small)."""
    tok = load_tokenizer("smollm2")
    model = load_model("smollm2").eval()
    prompts = [
        tok.encode(t)
        for t in ("Question: What is the capital of Peru?\nAnswer:", "Name three rivers", "Hi!")
    ]
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0)
    plain = HFGenerator(model, tok, fast_decode=False).generate(prompts, greedy)
    fast = HFGenerator(model, tok, fast_decode=True).generate(prompts, greedy)
    for a, b in zip(plain, fast):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)
    sampled = HFGenerator(model, tok, dtype="bfloat16").generate(
        prompts * 4, SamplingParams(max_new_tokens=16, temperature=0.7, seed=0)
    )
    diffs = []
    for p, g in zip(prompts * 4, sampled):
        ids = torch.tensor([list(p) + g.token_ids])
        score = torch.tensor([[0] * len(p) + [1] * len(g.token_ids)])
        with torch.no_grad():
            logp, _ = token_logprobs(model, ids, torch.ones_like(ids), score, 0.7)
        diffs += [abs(a - b) for a, b in zip(logp[0, len(p) :].tolist(), g.logprobs)]
    mean = sum(diffs) / len(diffs)
    assert 0 < mean < 0.05, mean  # bf16 differs from fp32, but by little
