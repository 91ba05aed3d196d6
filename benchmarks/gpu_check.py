"""The GPU path in one prepared run: rollout tokens/s and GRPO update time, bf16, no weights.

A randomly initialised model of SmolLM2-135M's shape (30 layers, hidden 576, 9 heads / 3 KV
heads, 49,152-token vocabulary; built from a config, nothing is downloaded) runs the same code the
trainer runs: ``HFGenerator`` samples B × G continuations of random prompts (no early stop, so
every row generates ``--max-new`` tokens), then ``GRPOTrainer._update`` does one GRPO update on
them (random advantages; fp32 master weights, bf16 autocast under ``dtype="auto"``, fused AdamW).
Prints tokens/s of the rollout (prefill included), the update's seconds and the whole step's.
Sized to finish well inside 8 minutes on one GPU (a few minutes on the 2-core CPU with
``--tiny``); ``--device cpu --tiny`` is the smoke run the test suite makes.

Run: ``python benchmarks/gpu_check.py`` (``make gpu-check``), or
``python benchmarks/gpu_check.py --device cpu --tiny --steps 1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator
from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.distributed import Dist
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.trainer import GRPOTrainer, make_adamw
from research_agents.runtime import resolve_device, resolve_dtype

SMOLLM2_SHAPE: dict[str, Any] = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
TINY_SHAPE = SMOLLM2_SHAPE | {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


class _PadTokenizer:
    """The only tokenizer attribute the update reads."""

    pad_token_id = 0
    eos_token_id = None


def random_model(shape: dict[str, Any], device: torch.device, seed: int) -> Any:
    """A Llama of ``shape`` with random weights, fp32 (the master copy), on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).to(device)


def bare_trainer(cfg: GRPOConfig, model: Any, device: torch.device) -> GRPOTrainer:
    """A ``GRPOTrainer`` holding just what ``_update`` reads (no env, no data, no logger)."""
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.config = cfg
    trainer.dist = Dist(device=device)
    trainer.model = model
    trainer.tokenizer = _PadTokenizer()  # type: ignore[assignment]
    trainer.ref_model = None
    trainer.step = 0
    compute = resolve_dtype(cfg.dtype, device)
    trainer.autocast_dtype = compute if compute != torch.float32 else None
    params = [p for p in model.parameters() if p.requires_grad]
    trainer.optimizer = make_adamw(params, lr=cfg.lr, weight_decay=0.0)
    return trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up, time ``--steps`` steps; return the figures."""
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    shape = TINY_SHAPE if args.tiny else SMOLLM2_SHAPE
    model = random_model(shape, device, args.seed)
    model.config.use_cache = False
    n = args.prompts * args.group
    cfg = GRPOConfig(
        model="random",
        dtype=args.dtype,
        questions_per_step=args.prompts,
        group_size=args.group,
        mini_batch_size=n,
        micro_batch_tokens=max(8192, n * (args.prompt_len + args.max_new)),
        max_new_tokens=args.max_new,
        max_response_tokens=args.max_new,
        eps_low=0.2,
        eps_high=0.2,
        lr=1e-5,
        seed=args.seed,
        tensorboard=False,
    )
    trainer = bare_trainer(cfg, model, device)
    gen = HFGenerator(model, _PadTokenizer(), dtype=trainer.autocast_dtype)  # type: ignore[arg-type]
    gen.eos_ids = set()  # every row generates exactly max_new tokens
    rng = torch.Generator().manual_seed(args.seed)
    vocab = int(shape["vocab_size"])
    params = SamplingParams(max_new_tokens=args.max_new, temperature=1.0)
    rows: list[dict[str, float]] = []
    for step in range(args.warmup + args.steps):
        prompts = [
            torch.randint(3, vocab, (args.prompt_len,), generator=rng).tolist()
            for _ in range(args.prompts)
        ]
        batch = [p for p in prompts for _ in range(args.group)]
        _sync(device)
        t0 = time.perf_counter()
        gens = gen.generate(batch, dataclasses.replace(params, seed=step))
        _sync(device)
        t_gen = time.perf_counter() - t0
        trajs = [
            Trajectory(
                prompt_ids=list(p),
                response_ids=list(g.token_ids),
                loss_mask=[1] * len(g.token_ids),
                old_logprobs=list(g.logprobs),
                group_id=i // args.group,
            )
            for i, (p, g) in enumerate(zip(batch, gens))
        ]
        adv = torch.randn(n, generator=rng)
        t1 = time.perf_counter()
        update = trainer._update(trajs, adv)
        gen.sync_weights(model)
        _sync(device)
        t_upd = time.perf_counter() - t1
        trainer.step += 1
        tokens = sum(len(g.token_ids) for g in gens)
        if step >= args.warmup:
            rows.append(
                {
                    "rollout_tokens_per_s": tokens / t_gen,
                    "rollout_s": t_gen,
                    "update_s": t_upd,
                    "step_s": t_gen + t_upd,
                    "logprob_mismatch": update["train/logprob_mismatch"],
                }
            )
    med = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]}
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "model": "tiny" if args.tiny else "smollm2-shaped",
        "parameters": sum(p.numel() for p in model.parameters()),
        "sequences": n,
        "prompt_len": args.prompt_len,
        "max_new": args.max_new,
        "steps": len(rows),
        **med,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    ap.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model (smoke run)")
    ap.add_argument("--prompts", type=int, default=16, help="distinct prompts (B)")
    ap.add_argument("--group", type=int, default=8, help="continuations per prompt (G)")
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    try:
        out = run(args)
    except ValueError as err:  # e.g. --device cuda without a GPU
        print(f"gpu_check: {err}", file=sys.stderr)
        return 2
    print(
        f"{out['model']} ({out['parameters'] / 1e6:.1f}M parameters) on {out['device_name']}, "
        f"{out['dtype']}: {out['sequences']} sequences x ({out['prompt_len']} prompt + "
        f"{out['max_new']} new tokens), median of {out['steps']} steps"
    )
    print(f"rollout tokens/s: {out['rollout_tokens_per_s']:.1f} ({out['rollout_s']:.2f} s)")
    print(f"update s: {out['update_s']:.2f}")
    print(f"step s: {out['step_s']:.2f}")
    print(f"sampler/trainer logprob mismatch (mean |d|): {out['logprob_mismatch']:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
