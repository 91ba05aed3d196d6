"""One GRPO step, ours against TRL's ``GRPOTrainer``, on the same model, batch and lengths.

What one step is, on both sides: tokenise B prompts, sample G completions of each (B × G
sequences) of exactly ``--max-new`` tokens, score them, compute group advantages, then one
forward/backward over all B × G sequences and one AdamW step. Both sides are configured alike:

* the same model weights (``--model tiny``: the random 2-layer Llama of ``models.tiny_path()``;
  ``--model smollm2``: SmolLM2-135M-Instruct), fp32, on the CPU, ``--threads`` torch threads;
* the same B = 8 plain-text prompts (7–36 tokens, so prompts are padded) and G = 4;
* exactly ``--max-new`` new tokens per completion, no early stop: TRL gets
  ``generation_kwargs={"min_new_tokens": L}`` (EOS is never sampled), our ``HFGenerator`` gets
  an empty EOS set (it never stops on one); temperature 1, no top-p / top-k, no stop strings;
* the same reward, ``len(completion text) % 3`` (so advantages are not all zero), and the same
  group-normalised advantages ((r - mean) / std per prompt);
* the same loss: TRL ``loss_type="dapo"`` (token mean over the whole batch) with ``beta=0``,
  ``epsilon=0.2``, ``num_iterations=1``, ``gradient_accumulation_steps=1`` and
  ``per_device_train_batch_size=B × G`` (one generation batch, one optimiser step, and TRL then
  skips its extra "old log-prob" forward); ours ``aggregation="token_mean"``, ``beta=0``,
  ``eps_low=eps_high=0.2``, ``epochs=1``, ``mini_batch_size=B × G`` and ``micro_batch_tokens``
  large enough for one micro-batch; both clip the gradient norm at 1 and use AdamW (same lr,
  betas and eps, no weight decay, TRL's scheduler constant). The optimiser is each trainer's
  own: ``transformers`` defaults to ``adamw_torch_fused`` (``AdamW(fused=True)``), our
  ``GRPOTrainer.__init__`` builds a plain ``torch.optim.AdamW`` (for-loop kernel), copied here;
* TRL without vLLM (``use_vllm=False``), plain ``model.generate``; TRL computes the entropy of
  every completion token in its loss, so does our trainer (``with_entropy=True``).

Our side has no environment here (TRL has none in this comparison): instead of ``rollout()``
through SearchQA-v0 the benchmark calls ``HFGenerator.generate`` on the token-id prompts, builds
the ``Trajectory`` objects the rollout would (prompt ids, sampled ids with loss mask 1 and their
sampling log-probs, reward, group), computes ``group_advantages`` and then runs the trainer's own
update code, ``research_agents.grpo.trainer.GRPOTrainer._update``, on a trainer object made
without its ``__init__`` (which would build the env): the loss, micro-batching, clipping and
optimiser step timed are exactly the trainer's.

The two sides run interleaved in one process: a TRL ``TrainerCallback`` runs one of our steps
after each TRL step, so both share whatever load the machine has at that moment. TRL's step is
timed from ``on_step_begin`` to ``on_step_end`` (generation, scoring, forward/backward, clipping,
optimiser: it leaves out the dataloader and logging, which flatters TRL slightly); ours from
tokenising the prompts to the end of the optimiser step. The first ``--warmup`` steps of each
side are dropped; the table gives medians over ``--steps`` steps, the median of the paired
ratios (ours_i / TRL_i) and each side's breakdown (medians of each phase, so parts need not add up
exactly to the total).

Run: ``.venv/bin/python benchmarks/trainer.py`` (tiny model: ~1.5 minutes on 2 idle cores,
several times that on a loaded machine); ``--model smollm2 --steps 2 --warmup 1`` for the real
model (~5 minutes idle, 20+ loaded); ``--threads 1`` avoids the OpenMP barrier stalls that make
2-thread timings erratic when the cores are shared; ``--sampler multinomial`` puts back
``torch.multinomial`` in ``HFGenerator`` (the sampler before this benchmark's fix) to compare;
``--profile`` adds a ``torch.profiler`` table of one of our steps.

This script is longer than our ~400-line rule for one stated reason: it is one comparison, and
a tenth of it is this docstring, which states exactly how the two sides are made alike (the
claim the numbers rest on). Our step, TRL's trainer, the interleaved run and the report each
depend on the same arguments and timings; split into modules, the setup a reader must check
would sit apart from the code that implements it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator
from research_agents.grpo.advantages import group_advantages
from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.distributed import init_distributed
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.trainer import GRPOTrainer, make_adamw
from research_agents.models import load_model, load_tokenizer, smollm2_path, tiny_path
from research_agents.runtime import resolve_dtype, resolve_threads

PROMPTS = [
    "Question: What is the capital of France?\nAnswer:",
    "Question: Which river flows through the city of Vienna, and into which sea does it drain?"
    "\nAnswer:",
    "Summarise in one sentence why the sky looks blue during the day.",
    "Question: What currency is used in Japan?\nAnswer:",
    "Write a short search query that would find the highest point of Nepal, then answer the "
    "question: what is the highest point of Nepal, and how high is it above sea level?",
    "Question: Who wrote the novel Pride and Prejudice?\nAnswer:",
    "List three countries that border Germany.",
    "Question: In which year did the first human land on the Moon, and what was the name of the "
    "mission that carried the astronauts there?\nAnswer:",
]


def reward_text(text: str) -> float:
    """The benchmark's reward: not a real task, just different numbers for different texts."""
    return float(len(text) % 3)


def trl_reward(completions: list[str], **_: Any) -> list[float]:
    """``reward_text`` in TRL's reward-function signature."""
    return [reward_text(c) for c in completions]


class Phases:
    """Named wall-clock accumulators for one step (``with phases("name"): ...``)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] += time.perf_counter() - t0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)

        return wrapped

    def reset(self) -> dict[str, float]:
        out = dict(self.t)
        self.t.clear()
        return out


@contextlib.contextmanager
def timed_backward(phases: Phases) -> Iterator[None]:
    """Time every ``Tensor.backward`` call inside the block (our trainer calls it directly)."""
    original = torch.Tensor.backward

    def backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        with phases("backward"):
            return original(self, *args, **kwargs)

    torch.Tensor.backward = backward  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.backward = original  # type: ignore[method-assign]


class OurStep:
    """Our step: ``HFGenerator`` sampling, trajectories, advantages, ``GRPOTrainer._update``."""

    def __init__(self, model: Any, tokenizer: Any, args: argparse.Namespace) -> None:
        self.args = args
        self.tokenizer = tokenizer
        n = len(PROMPTS) * args.group
        longest = max(len(ids) for ids in tokenizer(PROMPTS)["input_ids"])
        cfg = GRPOConfig(
            model=args.model,
            questions_per_step=len(PROMPTS),
            group_size=args.group,
            epochs=1,
            mini_batch_size=n,
            micro_batch_tokens=max(8192, n * (longest + args.max_new)),
            eps_low=0.2,
            eps_high=0.2,
            beta=0.0,
            aggregation="token_mean",
            scale_std=True,
            mask_truncated=True,
            lr=args.lr,
            weight_decay=0.0,
            max_grad_norm=1.0,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=args.max_new,
            max_response_tokens=args.max_new,
            seed=args.seed,
            dtype=args.dtype,
            tensorboard=False,
        )
        self.threads = resolve_threads(args.our_threads)
        model.config.use_cache = False  # as GRPOTrainer.__init__ does
        # The trainer without its __init__ (which builds the env): just what _update reads.
        trainer = GRPOTrainer.__new__(GRPOTrainer)
        trainer.config = cfg
        trainer.dist = init_distributed()  # a single process, as in GRPOTrainer.__init__
        trainer.model = model
        trainer.tokenizer = tokenizer
        trainer.ref_model = None
        trainer.step = 0
        compute = resolve_dtype(args.dtype, trainer.dist.device)
        # as GRPOTrainer.__init__: dtype "auto" = fp32 master weights, bf16 autocast + rollouts
        trainer.autocast_dtype = (
            compute if args.dtype == "auto" and compute != torch.float32 else None
        )
        params = [p for p in model.parameters() if p.requires_grad]
        if args.optimizer == "fused":  # what GRPOTrainer builds (make_adamw)
            trainer.optimizer = make_adamw(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:  # the for-loop kernel the trainer used before
            trainer.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.trainer = trainer
        self.generator = HFGenerator(
            model, tokenizer, dtype=trainer.autocast_dtype, fast_decode=args.decode == "fast"
        )
        self.generator.eos_ids = set()  # no early stop: every completion is max_new tokens long
        self.phases = Phases()
        # Every step builds its own PolicyUpdate: time the forward + loss of all of them.
        from research_agents.grpo.update import PolicyUpdate

        PolicyUpdate._micro_loss = self.phases.wrap("forward + loss", PolicyUpdate._micro_loss)  # type: ignore[method-assign]
        trainer.optimizer.register_step_pre_hook(lambda *_: self._opt_start())
        trainer.optimizer.register_step_post_hook(lambda *_: self._opt_end())
        self._t_opt = 0.0

    def _opt_start(self) -> None:
        self._t_opt = time.perf_counter()

    def _opt_end(self) -> None:
        self.phases.t["optimizer"] += time.perf_counter() - self._t_opt

    def step(self) -> tuple[float, dict[str, float]]:
        """One step; returns its wall time and its phases."""
        cfg = self.trainer.config
        g = cfg.group_size
        ph = self.phases
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        t0 = time.perf_counter()
        with ph("tokenise"):
            prompt_ids = self.tokenizer(PROMPTS)["input_ids"]
        prompts = [ids for ids in prompt_ids for _ in range(g)]
        groups = [i for i in range(len(prompt_ids)) for _ in range(g)]
        params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
        with ph("generate"):
            gens = self.generator.generate(prompts, params)
        with ph("score + advantages"):
            trajs = []
            for p, gid, gen in zip(prompts, groups, gens):
                text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
                trajs.append(
                    Trajectory(
                        prompt_ids=list(p),
                        response_ids=list(gen.token_ids),
                        loss_mask=[1] * len(gen.token_ids),
                        old_logprobs=list(gen.logprobs),
                        reward=reward_text(text),
                        group_id=gid,
                    )
                )
            adv = group_advantages([t.reward for t in trajs], groups, scale_std=cfg.scale_std)
        with ph("update (total)"), timed_backward(ph):
            self.trainer._update(trajs, adv)
        self.generator.sync_weights(self.trainer.model)  # no-op: the generator samples the policy
        self.trainer.step += 1
        wall = time.perf_counter() - t0
        assert all(len(t.response_ids) == cfg.max_new_tokens for t in trajs)
        phases = ph.reset()
        phases["clip + zero_grad + rest of update"] = (
            phases.pop("update (total)")
            - phases.get("forward + loss", 0.0)
            - phases.get("backward", 0.0)
            - phases.get("optimizer", 0.0)
        )
        return wall, phases


def build_trl(model: Any, tokenizer: Any, args: argparse.Namespace, out_dir: str) -> Any:
    """TRL's GRPOTrainer configured like our step (see the module docstring)."""
    from datasets import Dataset
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer as TRLTrainer

    n = len(PROMPTS) * args.group
    config = TRLConfig(
        output_dir=out_dir,
        per_device_train_batch_size=n,
        gradient_accumulation_steps=1,
        num_generations=args.group,
        max_completion_length=args.max_new,
        generation_kwargs={"min_new_tokens": args.max_new},
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        use_vllm=False,
        num_iterations=1,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        scale_rewards="group",
        mask_truncated_completions=False,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=args.warmup + args.steps,
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        seed=args.seed,
        log_completions=False,
    )
    dataset = Dataset.from_dict({"prompt": PROMPTS})
    return TRLTrainer(
        model=model,
        reward_funcs=trl_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build both sides, train them interleaved, return the per-step timings."""
    from transformers import TrainerCallback

    for key, value in vars(build_parser().parse_args([])).items():
        if not hasattr(args, key):  # a caller's namespace from before an option existed
            setattr(args, key, value)
    if args.our_threads is None:
        args.our_threads = args.threads
    torch.set_num_threads(args.threads)
    path = str(tiny_path() if args.model == "tiny" else smollm2_path())
    tokenizer = load_tokenizer(path)
    torch.manual_seed(args.seed)
    ours = OurStep(load_model(path), tokenizer, args)
    trl_model = load_model(path)
    tmp = tempfile.TemporaryDirectory(prefix="grpo-bench-")
    trl = build_trl(trl_model, load_tokenizer(path), args, tmp.name)

    trl_phases = Phases()
    # TRL's generation is ``unwrapped_model.generate``: on one CPU process that is this model.
    trl_model.generate = trl_phases.wrap("generate", trl_model.generate)
    trl._generate_and_score_completions = trl_phases.wrap(
        "generate + score", trl._generate_and_score_completions
    )
    trl.training_step = trl_phases.wrap("training_step", trl.training_step)

    records: dict[str, list[Any]] = {"ours": [], "trl": [], "ours_ph": [], "trl_ph": []}
    threads_seen: set[int] = set()

    class Interleave(TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            torch.set_num_threads(args.threads)  # ours may have set its own count
            threads_seen.add(torch.get_num_threads())
            self.t0 = time.perf_counter()

        def on_pre_optimizer_step(self, *_: Any, **__: Any) -> None:
            self.t_opt = time.perf_counter()

        def on_optimizer_step(self, *_: Any, **__: Any) -> None:
            trl_phases.t["optimizer"] += time.perf_counter() - self.t_opt

        def on_step_end(self, *_: Any, **__: Any) -> None:
            wall = time.perf_counter() - self.t0
            ph = trl_phases.reset()
            gs = ph.pop("generate + score", 0.0)
            ts = ph.pop("training_step", 0.0)
            ph["score + advantages"] = gs - ph.get("generate", 0.0)
            ph["forward + loss + backward"] = ts - gs
            ph["clip + zero_grad + rest"] = wall - ts - ph.get("optimizer", 0.0)
            records["trl"].append(wall)
            records["trl_ph"].append(ph)
            # Our step right after TRL's: the two alternate, sharing the machine's load.
            threads_seen.add(torch.get_num_threads())
            w, p = ours.step()
            records["ours"].append(w)
            records["ours_ph"].append(p)
            if args.verbose:
                n = len(records["ours"])
                print(f"step {n}: ours {w:.3f} s, TRL {wall:.3f} s", file=sys.stderr, flush=True)

    trl.add_callback(Interleave())
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        trl.train()  # its end-of-training summary goes to the StringIO
    tmp.cleanup()
    # TRL's own completion-length metrics: every completion was exactly max_new tokens.
    summary = {k: float(v) for k, v in trl.state.log_history[-1].items() if "length" in k}
    lengths = (summary["completions/min_length"], summary["completions/max_length"])
    if lengths != (args.max_new, args.max_new):
        raise RuntimeError(f"TRL completions were not all {args.max_new} tokens: {summary}")
    records["threads"] = sorted(threads_seen)
    if args.profile:
        records["profile"] = profile_ours(ours)
    return records


def profile_ours(ours: OurStep) -> str:
    """A torch.profiler table (top ops by self CPU time) of one of our steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ours.step()
    return str(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def median_phases(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return {k: statistics.median(r.get(k, 0.0) for r in rows) for k in keys}


def report(args: argparse.Namespace, rec: dict[str, Any]) -> str:
    w = args.warmup
    ours, trl = rec["ours"][w:], rec["trl"][w:]
    m_ours, m_trl = statistics.median(ours), statistics.median(trl)
    paired = statistics.median(o / t for o, t in zip(ours, trl))
    n = len(PROMPTS) * args.group
    lines = [
        f"model={args.model} sampler={args.sampler} prompts={len(PROMPTS)} G={args.group} "
        f"sequences={n} "
        f"completion={args.max_new} tokens threads={args.threads} (seen {rec['threads']}) "
        f"ours: dtype={args.dtype} threads={args.our_threads} optimizer={args.optimizer} "
        f"decode={args.decode} "
        f"steps={len(ours)} after {w} warm-up, interleaved",
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "",
        "| | ours s/step | TRL s/step | ratio ours/TRL |",
        "|---|---:|---:|---:|",
        f"| median | {m_ours:.3f} | {m_trl:.3f} | {m_ours / m_trl:.2f} |",
        f"| min | {min(ours):.3f} | {min(trl):.3f} | {min(ours) / min(trl):.2f} |",
        f"| median of paired ratios | | | {paired:.2f} |",
        "",
        "Per step, median of each phase (s):",
        "",
        "| phase | ours | TRL |",
        "|---|---:|---:|",
    ]
    po, pt = median_phases(rec["ours_ph"][w:]), median_phases(rec["trl_ph"][w:])
    rows = [
        ("tokenise prompts", po.get("tokenise"), None),
        ("generate", po.get("generate"), pt.get("generate")),
        (
            "decode + reward + advantages",
            po.get("score + advantages"),
            pt.get("score + advantages"),
        ),
        ("forward + loss", po.get("forward + loss"), None),
        ("backward", po.get("backward"), None),
        ("forward + loss + backward", None, pt.get("forward + loss + backward")),
        ("optimizer step", po.get("optimizer"), pt.get("optimizer")),
        (
            "clip + zero_grad + rest",
            po.get("clip + zero_grad + rest of update"),
            pt.get("clip + zero_grad + rest"),
        ),
    ]

    def fmt(x: float | None) -> str:
        return "" if x is None else f"{x:.3f}"

    lines += [f"| {name} | {fmt(a)} | {fmt(b)} |" for name, a, b in rows]
    lines += ["", f"raw ours: {[round(x, 3) for x in rec['ours']]}"]
    lines += [f"raw TRL:  {[round(x, 3) for x in rec['trl']]}"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (``run`` fills options a caller's namespace lacks from these)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    ap.add_argument("--group", type=int, default=4, help="completions per prompt (G)")
    ap.add_argument("--max-new", type=int, default=64, help="tokens per completion")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (TRL, and ours)")
    ap.add_argument("--our-threads", help="our side's threads instead: N or auto")
    ap.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "auto"],
        help="our side: auto = bf16 autocast with fp32 master weights and a bf16 rollout copy",
    )
    ap.add_argument("--optimizer", choices=["fused", "plain"], default="fused")
    ap.add_argument(
        "--decode", choices=["fast", "plain"], default="fast", help="HFGenerator fast_decode"
    )
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sampler",
        choices=["hf", "multinomial"],
        default="hf",
        help="multinomial: swap HFGenerator's sampler back to torch.multinomial (before the fix)",
    )
    ap.add_argument("--profile", action="store_true", help="profile one more of our steps")
    ap.add_argument("--verbose", action="store_true", help="print every step's times")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.sampler == "multinomial":
        import research_agents.generation.hf as hf

        def multinomial(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
            return torch.multinomial(probs.cpu(), 1, generator=rng)[:, 0].to(probs.device)

        hf._sample = multinomial
    rec = run(args)
    print(report(args, rec))
    if args.profile:
        print("\ntorch.profiler, one of our steps (top ops by self CPU time):")
        print(rec["profile"])


if __name__ == "__main__":
    main()
