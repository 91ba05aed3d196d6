"""``make bench``: a quick version of every throughput benchmark in one run, and a table of ratios.

Sections, in this order, all in this one process (each script also runs alone, with more
options and its full documentation):

1. retrieval (``benchmarks/retrieval.py``): the default BM25 backend (bm25s index + numba
   MaxScore) against rank_bm25, top-5, one query at a time, on a 10,000-passage synthetic
   Zipfian corpus (200 queries; rank_bm25 on the first 50).
2. env (``benchmarks/env_throughput.py``): steps/s of the scripted Factbook agent through
   ``research_env.agent.play`` on one ``SearchQAEnv`` and on ``SearchQAVectorEnv`` at 1, 8 and
   64 sub-envs (all 1,457 train questions, fastest of 5 passes).
3. trainer (``benchmarks/trainer.py``): one GRPO step, ours against TRL's ``GRPOTrainer``, tiny
   random 2-layer Llama, 8 prompts x 4 completions x 64 tokens (3 timed steps after 1 warm-up).
4. generation (``benchmarks/generation.py``): rollout tokens/s, ``HFGenerator`` against
   ``VLLMGenerator``, SmolLM2-135M, batch 8 — only where ``vllm`` is importable (it lives in
   ``.venv-vllm``, which ``make test-vllm`` builds); otherwise the section is skipped.

The summary gives each comparison as a speed-up: how many times faster the first-named side is
(rank_bm25 ms/query / default ms/query; vector-env steps/s / single-env steps/s; TRL s/step /
our s/step; vLLM tokens/s / HF tokens/s). ``--json PATH`` also writes every number measured.

Run: ``make bench`` or ``.venv/bin/python benchmarks/run_all.py`` (about 4 minutes on 2 idle
cores). ``--only env trainer`` runs some sections.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

VLLM_SKIP = "skipped: vllm not installed (make test-vllm builds .venv-vllm)"


@dataclass
class Row:
    """One line of the summary table."""

    benchmark: str
    measured: str
    speedup: float | None = None
    note: str = ""


@dataclass
class Section:
    """What one section measured: summary rows, its own detail table, every number."""

    name: str
    rows: list[Row] = field(default_factory=list)
    detail: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def bench_retrieval() -> Section:
    import retrieval  # benchmarks/retrieval.py

    args = argparse.Namespace(
        seed=0,
        no_stopwords=False,
        queries=200,
        ref_queries=50,
        ref_seconds=15.0,
        skip_reference=False,
        skip_library=True,
    )
    n = 10_000
    workdir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    try:
        row = retrieval.run_size(n, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    detail = io.StringIO()
    with contextlib.redirect_stdout(detail):
        retrieval.print_tables([row])
    section = Section("retrieval", detail=detail.getvalue().strip(), numbers=row)
    section.rows.append(
        Row(
            f"retrieval: BM25 top-5, {n:,} passages, one query at a time (default vs rank_bm25)",
            f"rank_bm25 {row['ref_ms']:.1f} ms/q, default {row['bm25s_ms_on_ref_queries']:.3f} "
            f"ms/q (same {row['ref_queries']} queries; top-5 overlap {row['top5_overlap']:.2f})",
            row["speedup"],
        )
    )
    section.rows.append(
        Row(
            f"retrieval: {args.queries} queries in one search_batch vs one at a time (default)",
            f"{row['bm25s_batch_ms']:.3f} vs {row['bm25s_ms']:.3f} ms/q",
            row["bm25s_ms"] / row["bm25s_batch_ms"],
        )
    )
    return section


def bench_env() -> Section:
    import env_throughput

    results = env_throughput.run(questions=None, repeats=5, sizes=(1, 8, 64))
    single = results[0]
    section = Section(
        "env",
        detail=env_throughput.table(results),
        numbers={"results": [r.as_dict() for r in results]},
    )
    for r in results[1:]:
        section.rows.append(
            Row(
                f"env: scripted agent, {r.config} vs one SearchQAEnv",
                f"{r.steps_per_s:,.0f} vs {single.steps_per_s:,.0f} steps/s "
                f"({r.steps:,} steps, EM {r.em:.2f})",
                r.steps_per_s / single.steps_per_s,
            )
        )
    return section


def bench_trainer() -> Section:
    import trainer  # benchmarks/trainer.py (imports torch, transformers)

    args = argparse.Namespace(
        model="tiny",
        group=4,
        max_new=64,
        steps=3,
        warmup=1,
        threads=2,
        lr=1e-5,
        seed=0,
        sampler="hf",
        profile=False,
        verbose=False,
    )
    rec = trainer.run(args)
    ours, trl = rec["ours"][args.warmup :], rec["trl"][args.warmup :]
    m_ours, m_trl = statistics.median(ours), statistics.median(trl)
    section = Section("trainer", detail=trainer.report(args, rec), numbers=rec)
    section.rows.append(
        Row(
            "trainer: one GRPO step, tiny model, 32 sequences x 64 tokens (ours vs TRL)",
            f"TRL {m_trl:.2f} s/step, ours {m_ours:.2f} s/step (median of {len(ours)})",
            m_trl / m_ours,
        )
    )
    return section


def bench_generation() -> Section:
    section = Section("generation")
    if importlib.util.find_spec("vllm") is None:
        section.rows.append(Row("generation: rollout tokens/s, vLLM vs HF", VLLM_SKIP))
        return section
    import dataclasses

    import generation  # benchmarks/generation.py
    from research_agents.generation.base import SamplingParams
    from research_agents.generation.hf import HFGenerator
    from research_agents.generation.vllm import VLLMGenerator, configure_vllm_env
    from research_agents.models import SMOLLM2, load_model, load_tokenizer

    batch, repeats = 8, 2
    tokenizer = load_tokenizer(SMOLLM2)
    model = load_model(SMOLLM2).eval()
    prompts = generation.factbook_prompts(tokenizer, batch * (repeats + 1))
    params = SamplingParams(max_new_tokens=48, temperature=0.7, stop=("</search>", "</answer>"))
    configure_vllm_env()
    vllm_gen = VLLMGenerator.from_model(model, tokenizer, seed=0)
    try:
        gens: dict[str, Any] = {"hf": HFGenerator(model, tokenizer), "vllm": vllm_gen}
        batches = [prompts[r * batch : (r + 1) * batch] for r in range(repeats + 1)]
        for gen in gens.values():  # warm-up, untimed
            gen.generate(batches[0], dataclasses.replace(params, seed=99))
        res = generation.throughput(gens, batches[1:], params)
    finally:
        vllm_gen.close()
    hf, vl = res["hf"][0], res["vllm"][0]
    section.numbers = {"hf_tok_s": hf, "vllm_tok_s": vl, "ids_per_row": res["hf"][1]}
    section.rows.append(
        Row(
            f"generation: SmolLM2-135M rollout turn, batch {batch}, tokens/s (vLLM vs HF)",
            f"vLLM {vl:,.1f} tok/s, HF {hf:,.1f} tok/s",
            vl / hf,
        )
    )
    return section


SECTIONS: dict[str, Callable[[], Section]] = {
    "retrieval": bench_retrieval,
    "env": bench_env,
    "trainer": bench_trainer,
    "generation": bench_generation,
}


def summary(sections: list[Section]) -> str:
    lines = ["| benchmark | measured | speed-up |", "|---|---|---:|"]
    for s in sections:
        if s.error is not None:
            lines.append(f"| {s.name} | {s.error} | |")
        for r in s.rows:
            ratio = "" if r.speedup is None else f"**{r.speedup:,.2f}×**"
            lines.append(f"| {r.benchmark} | {r.measured} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    ap.add_argument("--json", type=Path, help="also write every measured number here")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    print(
        f"# make bench: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load_start:.1f}; python {platform.python_version()}",
        flush=True,
    )
    sections: list[Section] = []
    for name, fn in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n## {name}", flush=True)
        t0 = time.perf_counter()
        try:
            section = fn()
        except ImportError as e:  # an optional dependency this environment lacks
            section = Section(name, error=f"skipped: {e}")
        except Exception as e:
            traceback.print_exc()
            section = Section(name, error=f"failed: {type(e).__name__}: {e}")
        section.seconds = time.perf_counter() - t0
        sections.append(section)
        if section.detail:
            print(section.detail)
        for row in section.rows:
            print(f"{row.benchmark}: {row.measured}")
        if section.error:
            print(section.error)
        print(f"({name}: {section.seconds:.0f} s)", flush=True)

    total = time.perf_counter() - start
    print(
        f"\n## Summary ({total / 60:.1f} min; load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end)\n"
    )
    print(summary(sections))
    if args.json:
        payload = {
            s.name: {"seconds": s.seconds, "error": s.error, "numbers": s.numbers} for s in sections
        }
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 1 if any(s.error and s.error.startswith("failed") for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
