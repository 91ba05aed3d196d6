"""``searchqa eval``: greedy evaluation of a model or a GRPO checkpoint on held-out questions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``eval``'s options."""
    parser.add_argument("--checkpoint", help="a GRPO checkpoint folder (output_dir/checkpoint)")
    parser.add_argument("--model", help="a model name ('smollm2', 'tiny') or local folder")
    parser.add_argument("--preset", default="factbook-smollm2", help="env/generation settings")
    parser.add_argument("--split", default=None, help="split to evaluate (default: preset's)")
    parser.add_argument("--limit", type=int, default=0, help="questions (stratified; 0 = all)")
    parser.add_argument("--out", help="write per-question records to this JSONL file")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print EM / F1 / behaviour, overall and per question type."""
    from research_agents.grpo.config import get_preset
    from research_agents.grpo.trainer import GRPOTrainer

    config = get_preset(args.preset)
    overrides: dict[str, object] = {"tensorboard": False, "steps": 0, "beta": 0.0}
    if args.checkpoint:
        saved = Path(args.checkpoint) / "config.json"
        if saved.is_file():
            config = config.replace(
                **{
                    k: v
                    for k, v in json.loads(saved.read_text()).items()
                    if k
                    in (
                        "template",
                        "top_k",
                        "max_turns",
                        "max_new_tokens",
                        "max_response_tokens",
                        "response_prefix",
                        "turn_prefix",
                        "final_prefix",
                        "last_turn",
                        "retriever",
                        "dataset",
                        "eval_split",
                    )
                }
            )
        overrides["model"] = str(Path(args.checkpoint) / "model")
    elif args.model:
        overrides["model"] = args.model
    if args.split:
        overrides["eval_split"] = args.split
    overrides["eval_size"] = args.limit
    overrides["lora_rank"] = 0
    overrides["trainable_layers"] = None
    overrides["output_dir"] = str(Path(config.output_dir) / "eval")
    trainer = GRPOTrainer(config.replace(**overrides))
    result = trainer.evaluate()
    print(f"{config.eval_split if not args.split else args.split}: {result.n} questions")
    print(
        f"EM {result.em:.3f}  F1 {result.f1:.3f}  format-ok {result.format_ok:.2f}  "
        f"searches/q {result.searches:.2f}  answer-in-retrieval {result.answer_in_retrieval:.2f}"
    )
    for typ, m in result.by_type.items():
        print(f"  {typ:16s} n={int(m['n']):4d}  EM {m['em']:.3f}  F1 {m['f1']:.3f}")
    if args.out:
        with Path(args.out).open("w") as f:
            for r in result.records:
                f.write(json.dumps(r) + "\n")
        print(f"records: {args.out}")
    return 0
