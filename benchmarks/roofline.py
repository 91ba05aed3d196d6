"""Issue 13's four ratios in one run: the CPU recipe today vs dtype="auto" + threads="auto".

All measured in this one process, the two sides interleaved so that they share the machine's load:

1. **factbook-smollm2 step time**, new / today: two ``GRPOTrainer`` on the preset, same seed (so
   the same questions each step). *Today* is the fp32 path as it was: ``dtype="float32"``, torch's
   default thread count, ``HFGenerator(fast_decode=False)`` (``DynamicCache``, ``sdpa``) and the
   for-loop ``AdamW``. *New*: ``dtype="auto"`` (fp32 master weights, bf16 autocast, bf16 rollout
   copy, TIS correction), ``threads="auto"``, the decode kernels and fused AdamW. One untimed
   warm-up step each, then ``--steps`` timed steps each, alternating.
2. **rollout tokens/s**, new / today: a fresh SmolLM2, 8 Factbook prompts (the preset's template and
   forced ``<search>``) × 4 samples, exactly ``--max-new`` tokens each (no early stop, so both
   sides generate the same number), prefill included; ``--rounds`` interleaved rounds.
3. **our GRPO step / TRL's** ``GRPOTrainer`` on SmolLM2: ``benchmarks/trainer.py`` with our side on
   the new path and TRL as configured there (fp32, ``use_cpu``), both sides with the measured
   ``threads="auto"`` count, so that the ratio is the code's and not the thread count's.
4. **achieved FLOP/s / measured peak** for prefill, decode and the update: the peak is the best
   of large matmuls (1024 × 576 @ 576 × 1536 and 2048³) in each dtype and thread count, measured in
   this run; achieved FLOPs are counted from the model's shapes (decoder matmuls, attention scores,
   the LM head where it runs; the update's backward only through the trainable layers) over the
   new side's own timings: prefill and decode from section 2, the update from section 1's steps.

Run: ``.venv/bin/python benchmarks/roofline.py`` (about 15 minutes on 2 idle cores; much longer on
a loaded machine). ``--skip-trl`` leaves out section 3.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts

import torch
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator
from research_agents.grpo.presets import get_preset
from research_agents.grpo.trainer import GRPOTrainer
from research_agents.grpo.update import keep
from research_agents.models import SMOLLM2, load_model, load_tokenizer
from research_agents.runtime import auto_threads, cpu_has_bf16, resolve_dtype

DEFAULT_THREADS = torch.get_num_threads()  # torch's own default, before anything changes it


# ---------------------------------------------------------------- peak
def matmul_peak(dtype: torch.dtype, threads: int, seconds: float = 1.0) -> float:
    """Best GFLOP/s of large matmuls in ``dtype`` with ``threads`` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    best = 0.0
    try:
        for m, k, n in ((1024, 576, 1536), (2048, 2048, 2048)):
            a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
            a @ b
            t0, reps = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                t1 = time.perf_counter()
                a @ b
                best = max(best, 2 * m * k * n / (time.perf_counter() - t1) / 1e9)
                reps += 1
    finally:
        torch.set_num_threads(before)
    return best


# ---------------------------------------------------------------- FLOP counts
@dataclasses.dataclass
class Shape:
    """What the FLOP counts need of a decoder-only LM."""

    layer_params: int  # weights of one decoder layer's matmuls
    layers: int
    hidden: int
    vocab: int

    @classmethod
    def of(cls, model: Any) -> Shape:
        cfg = model.config
        layers = model.get_decoder().layers
        per = sum(p.numel() for n, p in layers[0].named_parameters() if p.dim() == 2)
        return cls(per, len(layers), cfg.hidden_size, cfg.vocab_size)

    def forward(self, lengths: list[int], new: list[int] | None = None, layers: int = 0) -> float:
        """FLOPs of running ``new[i]`` tokens (default all) of sequences of ``lengths[i]``."""
        new = new if new is not None else lengths
        n_layers = layers or self.layers
        flops = 0.0
        for length, q in zip(lengths, new):
            ctx = sum(range(length - q + 1, length + 1))  # keys seen by each new token
            flops += n_layers * (2 * self.layer_params * q + 4 * self.hidden * ctx)
        return flops

    def head(self, positions: int) -> float:
        return 2.0 * self.vocab * self.hidden * positions


# ---------------------------------------------------------------- 1. factbook step
def factbook_steps(args: argparse.Namespace, out_dir: str) -> dict[str, Any]:
    base = get_preset("factbook-smollm2").replace(
        checkpoint_every=0, eval_every=0, tensorboard=False, samples_every=0
    )
    today_cfg = base.replace(dtype="float32", threads=None, output_dir=f"{out_dir}/today")
    new_cfg = base.replace(dtype="auto", threads="auto", output_dir=f"{out_dir}/new")
    new_threads = auto_threads()
    torch.set_num_threads(DEFAULT_THREADS)
    model = load_model(SMOLLM2)
    tok = load_tokenizer(SMOLLM2)
    today = GRPOTrainer(
        today_cfg, model=model, tokenizer=tok, generator=HFGenerator(model, tok, fast_decode=False)
    )
    params = [p for p in today.model.parameters() if p.requires_grad]
    today.optimizer = torch.optim.AdamW(params, lr=today_cfg.lr, weight_decay=0.0)  # for-loop
    new = GRPOTrainer(new_cfg)
    captured: list[tuple[list[Any], float]] = []
    update = new._update

    def timed_update(trajs: list[Any], adv: torch.Tensor) -> dict[str, float]:
        t0 = time.perf_counter()
        out = update(trajs, adv)
        live = [t for t, a in zip(trajs, adv.tolist()) if a != 0.0 and keep(t, new.config)]
        captured.append((live, time.perf_counter() - t0))
        return out

    new._update = timed_update  # type: ignore[method-assign]
    rows: dict[str, list[dict[str, float]]] = {"today": [], "new": []}
    for step in range(args.warmup + args.steps):
        for name, trainer, threads in (
            ("today", today, DEFAULT_THREADS),
            ("new", new, new_threads),
        ):
            torch.set_num_threads(threads)
            m = trainer.train_step()
            if args.verbose:
                print(f"step {step} {name}: {m['perf/step_s']:.1f} s", file=sys.stderr, flush=True)
            if step >= args.warmup:
                rows[name].append(m)
    torch.set_num_threads(DEFAULT_THREADS)
    shape = Shape.of(new.model)
    trainable = new.config.trainable_layers or shape.layers
    upd_flops, upd_s = 0.0, 0.0
    for live, seconds in captured[args.warmup :]:
        lengths = [len(t.ids) for t in live]
        scored = sum(t.num_generated for t in live)
        fwd = shape.forward(lengths) + shape.head(scored)
        bwd = 2 * shape.forward(lengths, layers=trainable) + shape.head(scored)  # head: input grad
        upd_flops += fwd + bwd
        upd_s += seconds if live else 0.0
    return {
        "rows": rows,
        "threads": {"today": DEFAULT_THREADS, "new": new_threads},
        "update_gflops": upd_flops / upd_s / 1e9 if upd_s else None,
        "mismatch": [r.get("train/logprob_mismatch", 0.0) for r in rows["new"]],
    }


# ---------------------------------------------------------------- 2. rollout tokens/s
def rollouts(args: argparse.Namespace) -> dict[str, Any]:
    from generation import factbook_prompts  # benchmarks/generation.py

    tok = load_tokenizer(SMOLLM2)
    model = load_model(SMOLLM2).eval()
    new_threads = auto_threads()
    gens = {
        "today": (HFGenerator(model, tok, fast_decode=False), DEFAULT_THREADS),
        "new": (HFGenerator(model, tok, dtype="auto"), new_threads),
    }
    for g, _ in gens.values():
        g.eos_ids = set()  # every row generates exactly max_new tokens
    unique = factbook_prompts(tok, 8 * (args.rounds + 1))
    params = SamplingParams(max_new_tokens=args.max_new, temperature=0.7)
    res: dict[str, dict[str, float]] = {k: {"tokens": 0, "s": 0.0} for k in gens}
    prefill_s = {k: 0.0 for k in gens}
    for r in range(args.rounds + 1):
        batch = [p for p in unique[8 * r : 8 * r + 8] for _ in range(4)]
        for name, (gen, threads) in gens.items():
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            out = gen.generate(batch, dataclasses.replace(params, seed=r))
            el = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen.generate(batch, SamplingParams(max_new_tokens=1, seed=r))
            pre = time.perf_counter() - t0
            if r:  # round 0 warms up
                res[name]["tokens"] += sum(len(g.token_ids) for g in out)
                res[name]["s"] += el
                prefill_s[name] += pre
    torch.set_num_threads(DEFAULT_THREADS)
    shape = Shape.of(model)
    lengths = [len(p) for r in range(1, args.rounds + 1) for p in unique[8 * r : 8 * r + 8]]
    rows = 32
    prefill_flops = shape.forward(lengths) + shape.head(len(lengths))
    # decode steps 2..max_new for the 32 rows (step 1 comes out of the prefill's logits)
    decode_flops = 0.0
    for r in range(1, args.rounds + 1):
        for p in unique[8 * r : 8 * r + 8]:
            for j in range(1, args.max_new):
                decode_flops += 4 * (shape.forward([len(p) + j], [1]) + shape.head(1))
    new_decode_s = res["new"]["s"] - prefill_s["new"]
    return {
        "tokens_per_s": {k: v["tokens"] / v["s"] for k, v in res.items()},
        "prefill_s": prefill_s,
        "prefill_gflops": prefill_flops / prefill_s["new"] / 1e9,
        "decode_gflops": decode_flops / max(new_decode_s, 1e-9) / 1e9,
        "decode_tokens_per_s": rows * (args.max_new - 1) * args.rounds / max(new_decode_s, 1e-9),
        "threads": {"today": DEFAULT_THREADS, "new": new_threads},
    }


# ---------------------------------------------------------------- 3. vs TRL
def versus_trl(args: argparse.Namespace) -> dict[str, Any]:
    import trainer as trl_bench  # benchmarks/trainer.py

    ns = trl_bench.build_parser().parse_args(
        [
            "--model",
            "smollm2",
            "--steps",
            str(args.trl_steps),
            "--warmup",
            "1",
            "--threads",
            str(auto_threads()),  # TRL gets our thread count: the ratio is the code's
            "--our-threads",
            "auto",
            "--dtype",
            "auto",
        ]
    )
    rec = trl_bench.run(ns)
    ours, trl = rec["ours"][1:], rec["trl"][1:]
    # our update's FLOP/s: every parameter is trained there (no frozen layers), the head too
    phases = trl_bench.median_phases(rec["ours_ph"][1:])
    seconds = phases.get("forward + loss", 0.0) + phases.get("backward", 0.0)
    tok = load_tokenizer(SMOLLM2)
    shape = Shape.of(load_model(SMOLLM2))
    lengths = [len(ids) + ns.max_new for ids in tok(trl_bench.PROMPTS)["input_ids"]] * ns.group
    scored = len(lengths) * ns.max_new
    flops = 3 * (shape.forward(lengths) + shape.head(scored))  # forward + 2x in backward
    return {
        "update_gflops": flops / seconds / 1e9 if seconds else None,
        "ours": statistics.median(ours),
        "trl": statistics.median(trl),
        "paired": statistics.median(o / t for o, t in zip(ours, trl)),
        "report": trl_bench.report(ns, rec),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="timed factbook steps per side")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="timed rollout rounds per side")
    ap.add_argument("--max-new", type=int, default=32, help="tokens per rollout row")
    ap.add_argument("--trl-steps", type=int, default=2, help="timed TRL comparison steps")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    new_threads = auto_threads()
    dtype = resolve_dtype("auto", "cpu")
    peaks = {
        (str(dt).removeprefix("torch."), n): matmul_peak(dt, n)
        for dt in (torch.float32, torch.bfloat16)
        for n in sorted({1, DEFAULT_THREADS})
    }
    peak_new = peaks[(str(dtype).removeprefix("torch."), new_threads)]
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, avx512_bf16={cpu_has_bf16()}, torch "
        f"{torch.__version__}; load average {load0:.1f} at the start"
    )
    print(
        f"today: fp32, {DEFAULT_THREADS} threads (torch default), plain decode, for-loop AdamW | "
        f"new: dtype=auto ({str(dtype).removeprefix('torch.')}), threads=auto ({new_threads}), "
        "decode kernels, fused AdamW, TIS"
    )
    print(
        "measured matmul peaks (GFLOP/s): "
        + ", ".join(f"{dt} {n} thr {v:.0f}" for (dt, n), v in peaks.items()),
        flush=True,
    )
    table: list[str] = []
    flops: list[str] = []

    def section(name: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception:  # report what was measured so far, then the failure
            import traceback

            traceback.print_exc()
            print(f"section {name} failed", flush=True)
            return None

    roll = section("rollouts", lambda: rollouts(args))
    if roll is not None:
        tps = roll["tokens_per_s"]
        table.append(
            f"| rollout tokens/s (32 rows × {args.max_new}, prefill included) | "
            f"{tps['today']:.1f} | {tps['new']:.1f} | **{tps['new'] / tps['today']:.2f}×** | "
            "≥ 2.5× |"
        )
        for name, value in (("prefill", roll["prefill_gflops"]), ("decode", roll["decode_gflops"])):
            flops.append(f"| {name} | {value:.1f} | {peak_new:.1f} | **{value / peak_new:.0%}** |")
        print(table[-1], flush=True)
        print(
            f"decode tokens/s (new, prefill excluded): {roll['decode_tokens_per_s']:.1f}; prefill "
            f"s today / new: {roll['prefill_s']['today']:.2f} / {roll['prefill_s']['new']:.2f}",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="roofline-") as tmp:
        steps = section("factbook", lambda: factbook_steps(args, tmp))
    if steps is not None:
        med = {k: statistics.median(r["perf/step_s"] for r in v) for k, v in steps["rows"].items()}
        table.insert(
            0,
            f"| factbook-smollm2 step time (s, median of {args.steps}) | {med['today']:.1f} | "
            f"{med['new']:.1f} | **{med['new'] / med['today']:.2f}×** | ≤ 0.4× |",
        )
        value = steps["update_gflops"]
        if value is None:
            flops.append("| update, factbook step | no update in the timed steps | | |")
        else:
            flops.append(
                f"| update, factbook step (top 12 layers) | {value:.1f} | {peak_new:.1f} | "
                f"**{value / peak_new:.0%}** |"
            )
        print(table[0], flush=True)
        phase = {
            k: {p: statistics.median(r[p] for r in v) for p in ("perf/rollout_s", "perf/train_s")}
            for k, v in steps["rows"].items()
        }
        print(
            "step phases, median s (rollout / update): "
            + ", ".join(
                f"{k} {v['perf/rollout_s']:.1f} / {v['perf/train_s']:.1f}" for k, v in phase.items()
            )
        )
        print(
            f"train/logprob_mismatch of the new steps: {[round(x, 4) for x in steps['mismatch']]}"
        )
        print(
            "raw step s: "
            + ", ".join(
                f"{k} {[round(r['perf/step_s'], 1) for r in v]}" for k, v in steps["rows"].items()
            ),
            flush=True,
        )
    trl = None if args.skip_trl else section("trl", lambda: versus_trl(args))
    if trl is not None:
        table.append(
            f"| our GRPO step / TRL GRPOTrainer, SmolLM2 (s) | TRL {trl['trl']:.1f} | "
            f"ours {trl['ours']:.1f} | **{trl['ours'] / trl['trl']:.2f}** "
            f"(paired {trl['paired']:.2f}) | ≤ 0.4 |"
        )
        print(trl["report"])
        value = trl["update_gflops"]
        if value is not None:
            flops.append(
                f"| update, TRL-comparison step (all layers) | {value:.1f} | {peak_new:.1f} | "
                f"**{value / peak_new:.0%}** |"
            )
    print("")
    print(
        f"load average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t_start:.0f} s"
    )
    print("")
    print("| ratio | today | new | new / today | goal |")
    print("|---|---:|---:|---:|---|")
    print("\n".join(table))
    print("")
    print(
        f"| phase (new path) | achieved GFLOP/s | peak GFLOP/s ({dtype}, {new_threads} thr) | "
        "achieved / peak |"
    )
    print("|---|---:|---:|---:|")
    print("\n".join(flops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
