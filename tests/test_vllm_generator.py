"""VLLMGenerator against the HFGenerator reference, on SmolLM2 (needs the vllm extra).

Runs in a separate virtualenv (see benchmarks/generation.py); skipped where vLLM is missing.
One engine is started for the whole module (~10-40 s on a small CPU).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("vllm")

import torch
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator
from research_agents.generation.vllm import VLLMGenerator
from research_agents.models import SMOLLM2, load_model, load_tokenizer

pytestmark = pytest.mark.vllm

STOP = ("</search>", "</answer>")
N_FACTBOOK = 3


@pytest.fixture(scope="module")
def policy() -> Any:
    return load_model(SMOLLM2).eval()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(SMOLLM2)


@pytest.fixture(scope="module")
def prompts(tokenizer: Any) -> list[list[int]]:
    """Factbook questions in the compact ReSearch template, forced to start a search; plus a
    short chat turn that SmolLM2 ends with EOS (``<|im_end|>``)."""
    from research_env.env import SearchQAEnv

    env = SearchQAEnv(template="research_compact", tokenizer=tokenizer)
    out = []
    for i in range(N_FACTBOOK):
        text = env.reset(options={"index": i})[0]["prompt"] + "<search>"
        out.append(tokenizer.encode(text, add_special_tokens=False))
    chat = [{"role": "user", "content": "Say hello in one word."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


@pytest.fixture(scope="module")
def engine(policy: Any, tokenizer: Any) -> Iterator[VLLMGenerator]:
    gen = VLLMGenerator.from_model(policy, tokenizer, seed=0)
    yield gen
    gen.close()


def _hf_logprobs(model: Any, prompt: list[int], ids: list[int], temperature: float) -> list[float]:
    """``log_softmax(logits / T)`` of each of ``ids`` after ``prompt`` (one forward pass)."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1]
        logp = torch.log_softmax(logits.float() / (temperature or 1.0), dim=-1)
        return logp.gather(-1, torch.tensor(ids)[:, None])[:, 0].tolist()


def _mean_abs(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b)) / max(len(a), 1)


def test_greedy_matches_hf(
    engine: VLLMGenerator, policy: Any, tokenizer: Any, prompts: list[list[int]]
) -> None:
    params = SamplingParams(max_new_tokens=48, temperature=0.0, stop=STOP)
    ours = engine.generate(prompts, params)
    ref = HFGenerator(policy, tokenizer).generate(prompts, params)
    for got, want in zip(ours, ref):
        assert got.token_ids == want.token_ids, tokenizer.decode(got.token_ids)
        assert got.finish_reason == want.finish_reason
        assert got.stop_string == want.stop_string
        assert len(got.logprobs) == len(got.token_ids)
    reasons = {g.finish_reason for g in ours}
    assert {"stop", "eos"} <= reasons, reasons  # both endings are exercised
    deltas = [_mean_abs(g.logprobs, w.logprobs) for g, w in zip(ours, ref)]
    print(f"\ngreedy: mean |Δ logprob| vLLM vs HF = {sum(deltas) / len(deltas):.2e}")
    assert max(deltas) < 1e-3


def test_sampled_logprobs_match_hf(
    engine: VLLMGenerator, policy: Any, prompts: list[list[int]]
) -> None:
    """vLLM's log-probs of its own samples at T=0.7 equal ``log_softmax(logits / T)`` in HF."""
    params = SamplingParams(max_new_tokens=32, temperature=0.7, stop=STOP, seed=3)
    assert engine.logprobs_exact(params)
    ours = engine.generate(prompts, params)
    deltas, worst = [], 0.0
    for prompt, g in zip(prompts, ours):
        want = _hf_logprobs(policy, prompt, g.token_ids, params.temperature)
        deltas.append(_mean_abs(g.logprobs, want))
        worst = max(worst, *(abs(x - y) for x, y in zip(g.logprobs, want)))
    mean = sum(deltas) / len(deltas)
    print(f"\nT=0.7: mean |Δ logprob| vLLM vs HF = {mean:.2e} (max {worst:.2e})")
    assert mean < 1e-3
    assert worst < 1e-2


def test_seeds_reproduce_and_differ_across_copies(
    engine: VLLMGenerator, prompts: list[list[int]]
) -> None:
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=7)
    group = [prompts[0]] * 4
    first = [g.token_ids for g in engine.generate(group, params)]
    again = [g.token_ids for g in engine.generate(group, params)]
    assert first == again
    assert len({tuple(ids) for ids in first}) > 1  # the G copies are not clones


def test_sync_weights_follows_hf(
    engine: VLLMGenerator, policy: Any, tokenizer: Any, prompts: list[list[int]]
) -> None:
    params = SamplingParams(max_new_tokens=24, temperature=0.0, stop=STOP)
    before = [g.token_ids for g in engine.generate(prompts, params)]
    changed = copy.deepcopy(policy)
    with torch.no_grad():
        mlp = changed.model.layers[-1].mlp
        mlp.down_proj.weight.mul_(3.0)
        mlp.up_proj.weight.mul_(0.5)
    try:
        engine.sync_weights(changed)
        ours = engine.generate(prompts, params)
        ref = HFGenerator(changed, tokenizer).generate(prompts, params)
        assert [g.token_ids for g in ours] == [g.token_ids for g in ref]
        assert [g.token_ids for g in ours] != before  # the perturbation matters
        deltas = [_mean_abs(g.logprobs, w.logprobs) for g, w in zip(ours, ref)]
        assert max(deltas) < 1e-3

        # The tied embedding / LM head is re-packed too.
        with torch.no_grad():
            emb = changed.get_input_embeddings().weight
            emb.add_(torch.randn(emb.shape, generator=torch.Generator().manual_seed(0)) * 0.02)
        engine.sync_weights(changed)
        ours = engine.generate(prompts, params)
        ref = HFGenerator(changed, tokenizer).generate(prompts, params)
        assert [g.token_ids for g in ours] == [g.token_ids for g in ref]
        assert max(_mean_abs(g.logprobs, w.logprobs) for g, w in zip(ours, ref)) < 1e-3
    finally:
        engine.sync_weights(policy)
    assert [g.token_ids for g in engine.generate(prompts, params)] == before
