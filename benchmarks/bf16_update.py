"""Does ``dtype="auto"`` (bf16 sampler + bf16 autocast + TIS) update SmolLM2 as fp32 does?

One batch of real rollout turns (8 Factbook prompts of the factbook-smollm2 preset's template,
forced ``<search>``, × 4 samples from the bf16 sampler, T = 0.7, the template's stop strings) and
fixed advantages (seeded ±1-ish normal draws), then one GRPO update of the preset's trainable top 12
layers from identical weights, twice:

* **fp32**: the trainer in fp32, old log-probs from an fp32 sampler (the trainer's own fp32
  scores, what ``dtype="float32"`` rollouts give), ``logprob_correction="none"``;
* **auto**: bf16 autocast over fp32 master weights, old log-probs from the bf16 sampler as
  sampled, ``logprob_correction="tis"``.

With SGD at lr 1 as the optimiser the parameter change is the (clipped) negative gradient, so the
two updates compare directly: the cosine between them and the relative size of their difference.
The scale to read them against is sampling noise: the cosine between the fp32 gradients of two
halves of the batch (groups 0-3 against groups 4-7).

Run: ``.venv/bin/python benchmarks/bf16_update.py`` (a few minutes on 2 idle cores).
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator
from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.policy import freeze_lower_layers, token_logprobs
from research_agents.grpo.presets import get_preset
from research_agents.grpo.rollout import Trajectory
from research_agents.models import SMOLLM2, load_model, load_tokenizer
from research_agents.runtime import apply_threads


def delta(trainer: Any, start: dict[str, torch.Tensor], trajs: list[Trajectory], adv: Any) -> Any:
    """Run one update; return the flat parameter change and the update's metrics."""
    out = trainer._update(trajs, adv)
    moved = [
        (p.detach() - start[n]).flatten()
        for n, p in trainer.model.named_parameters()
        if p.requires_grad
    ]
    return torch.cat(moved), out


def main() -> int:
    from generation import factbook_prompts  # benchmarks/generation.py
    from gpu_check import bare_trainer

    apply_threads("auto")
    t0 = time.perf_counter()
    preset = get_preset("factbook-smollm2")
    tok = load_tokenizer(SMOLLM2)
    base = load_model(SMOLLM2)
    freeze_lower_layers(base, preset.trainable_layers or 30)
    start = {n: p.detach().clone() for n, p in base.named_parameters() if p.requires_grad}
    prompts = factbook_prompts(tok, 8)
    batch = [p for p in prompts for _ in range(4)]
    sampler = HFGenerator(base, tok, dtype="bfloat16")
    params = SamplingParams(
        max_new_tokens=preset.max_new_tokens,
        temperature=preset.temperature,
        stop=("</search>", "</answer>"),
        seed=0,
    )
    gens = sampler.generate(batch, params)
    trajs_bf16 = [
        Trajectory(
            prompt_ids=list(p),
            response_ids=list(g.token_ids),
            loss_mask=[1] * len(g.token_ids),
            old_logprobs=list(g.logprobs),
            group_id=i // 4,
        )
        for i, (p, g) in enumerate(zip(batch, gens))
    ]
    trajs_fp32 = []
    for t in trajs_bf16:
        ids = torch.tensor([t.ids])
        score = torch.tensor([[0] * len(t.prompt_ids) + t.loss_mask])
        with torch.no_grad():
            lp, _ = token_logprobs(base, ids, torch.ones_like(ids), score, preset.temperature)
        trajs_fp32.append(copy.copy(t))
        trajs_fp32[-1].old_logprobs = lp[0, len(t.prompt_ids) :].tolist()
    adv = torch.randn(len(batch), generator=torch.Generator().manual_seed(0))

    def side(dtype: str, correction: str, trajs: list[Trajectory], a: Any) -> Any:
        model = copy.deepcopy(base)
        cfg = GRPOConfig(
            dtype=dtype,
            logprob_correction=correction,  # type: ignore[arg-type]
            questions_per_step=8,
            group_size=4,
            mini_batch_size=len(batch),
            eps_low=preset.eps_low,
            eps_high=preset.eps_high,
            temperature=preset.temperature,
            max_new_tokens=preset.max_new_tokens,
            max_response_tokens=preset.max_response_tokens,
            lr=1.0,
            max_grad_norm=1e9,
            tensorboard=False,
        )
        trainer = bare_trainer(cfg, model, torch.device("cpu"))
        params = [p for p in model.parameters() if p.requires_grad]
        trainer.optimizer = torch.optim.SGD(params, lr=1.0)
        return delta(trainer, start, trajs, a)

    d_fp32, m_fp32 = side("float32", "none", trajs_fp32, adv)
    d_auto, m_auto = side("auto", "tis", trajs_bf16, adv)
    half = torch.tensor([1.0 if t.group_id < 4 else 0.0 for t in trajs_bf16])
    d_a, _ = side("float32", "none", trajs_fp32, adv * half)
    d_b, _ = side("float32", "none", trajs_fp32, adv * (1 - half))

    def cos(x: torch.Tensor, y: torch.Tensor) -> float:
        x, y = x.double(), y.double()  # ~50M entries: a float32 sum drifts past 1
        return float(x @ y / (x.norm() * y.norm()))

    tokens = sum(t.num_generated for t in trajs_bf16)
    print(
        f"SmolLM2-135M, top {preset.trainable_layers} layers, {len(batch)} sampled turns, "
        f"{tokens} sampled tokens; threads {torch.get_num_threads()}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    print("| | fp32 | auto (bf16 + TIS) |")
    print("|---|---:|---:|")
    print(f"| loss/pg | {m_fp32['loss/pg']:.5f} | {m_auto['loss/pg']:.5f} |")
    mm_f, mm_a = m_fp32["train/logprob_mismatch"], m_auto["train/logprob_mismatch"]
    print(f"| train/logprob_mismatch (mean abs) | {mm_f:.2e} | {mm_a:.2e} |")
    mx_f, mx_a = m_fp32["train/logprob_mismatch_max"], m_auto["train/logprob_mismatch_max"]
    print(f"| train/logprob_mismatch_max | {mx_f:.2e} | {mx_a:.2e} |")
    print(f"| train/tis_weight_mean | | {m_auto.get('train/tis_weight_mean', 1.0):.4f} |")
    print(f"| update norm | {float(d_fp32.norm()):.4f} | {float(d_auto.norm()):.4f} |")
    rel = float((d_auto - d_fp32).norm() / d_fp32.norm())
    print(
        f"cosine(fp32 update, auto update) = {cos(d_fp32, d_auto):.4f}; "
        f"|auto - fp32| / |fp32| = {rel:.4f}"
    )
    print(
        "sampling-noise scale: cosine(fp32 update of groups 0-3, of groups 4-7) = "
        f"{cos(d_a, d_b):.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
