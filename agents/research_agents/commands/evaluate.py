"""``searchqa eval``: evaluate an agent on a suite, or a model / GRPO checkpoint on a preset.

Two ways in:

* ``--suite`` / ``--agent`` (the evaluation harness, :mod:`research_agents.eval`): play any
  agent — an LLM baseline kind on ``--model`` or ``--checkpoint``, a rule-based reference, or
  your own ``module:attribute`` — over a suite, and print EM / F1 / sub-EM / format / searches /
  tokens with 95% bootstrap intervals, per question type, and the protocol hash.
  ``--out`` writes the per-question records (JSONL), ``--json`` the result, ``--save`` stores
  it where ``searchqa leaderboard`` renders it from.
* ``--checkpoint`` / ``--model`` with ``--preset`` alone (as before): the GRPO trainer's greedy
  evaluation with the preset's settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``eval``'s options."""
    parser.add_argument("--checkpoint", help="a GRPO checkpoint folder (output_dir/checkpoint)")
    parser.add_argument("--model", help="a model name ('smollm2', 'tiny') or local folder")
    parser.add_argument(
        "--agent",
        help="agent kind: direct | naive-rag | iter-retgen | research | oracle (LLM), "
        "scripted | naive-reader (rules), or module:attribute (your Agent); uses --suite",
    )
    parser.add_argument(
        "--suite",
        help="evaluation suite: factbook | factbook-dev | research-paper | searchr1-paper "
        "(default with --agent: factbook)",
    )
    parser.add_argument("--preset", default="factbook-smollm2", help="env/generation settings")
    parser.add_argument("--split", default=None, help="split to evaluate (default: preset's)")
    parser.add_argument("--limit", type=int, default=0, help="questions (stratified; 0 = all)")
    parser.add_argument("--out", help="write per-question records to this JSONL file")
    harness = parser.add_argument_group("suite evaluation (--suite / --agent)")
    harness.add_argument("--label", help="the row's name in tables")
    harness.add_argument("--json", help="write the result (metrics, protocol, provenance) here")
    harness.add_argument(
        "--save", action="store_true", help="store the result for `searchqa leaderboard`"
    )
    harness.add_argument(
        "--results-dir", default="benchmarks/results", help="where --save stores results"
    )
    add_run_options(harness)


def add_run_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Options shared by ``eval --suite`` and ``leaderboard``: batching, data, retriever, judge."""
    parser.add_argument("--batch-size", type=int, default=16, help="episodes in flight")
    parser.add_argument("--data-dir", help="paper suites: your datasets, FlashRAG layout")
    parser.add_argument(
        "--retriever", help="paper suites: retriever spec (default remote:http://127.0.0.1:8000)"
    )
    parser.add_argument("--judge-url", help="LLM judge: OpenAI-compatible API root (.../v1)")
    parser.add_argument("--judge-model", help="LLM judge: the model name the server serves")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


@contextlib.contextmanager
def run_setup(args: argparse.Namespace) -> Iterator[Any]:
    """Apply the run options: set ``--threads``; yield the judge or ``None``.

    The LLM judge is the one named by ``--judge-url`` / ``--judge-model``, closed on exit.
    """
    if bool(args.judge_url) != bool(args.judge_model):
        raise SystemExit("error: --judge-url and --judge-model go together")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.judge_url:
        yield None
        return
    from research_agents.eval.judge import JudgeConfig, LLMJudge

    with LLMJudge(JudgeConfig(base_url=args.judge_url, model=args.judge_model)) as judge:
        yield judge


def print_result(result: Any) -> None:
    """Print a :class:`~research_agents.eval.harness.SuiteResult` for a terminal."""
    print(f"{result.label} on suite {result.suite} (protocol {result.protocol_hash})")
    for name, task in result.tasks.items():
        m, ci = task.summary.metrics, task.summary.ci
        print(f"  {name}: {task.summary.n} questions")
        for key, title in (
            ("em", "EM"),
            ("f1", "F1"),
            ("sub_em", "sub-EM"),
            ("judge", "judge"),
            ("format_ok", "format ok"),
            ("answered", "answered"),
            ("searches", "searches/q"),
            ("tokens", "tokens/q"),
            ("answer_in_retrieval", "answer in retrieval"),
        ):
            value, interval = m.get(key), ci.get(key)
            if value is None:
                continue
            span = f"  [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            print(f"    {title:20s} {value:.3f}{span}")
        for typ, tm in task.summary.by_type.items():
            print(f"    {typ:16s} n={int(tm['n']):4d}  EM {tm['em']:.3f}  F1 {tm['f1']:.3f}")
        print(f"    ended: {task.summary.end_reasons}")


def _run_suite(args: argparse.Namespace) -> int:
    from research_agents.eval.harness import run_suite
    from research_agents.eval.leaderboard import save_result
    from research_agents.eval.suites import Entry, get_suite

    if args.split:
        raise SystemExit("error: --split goes with --preset; choose a suite (factbook-dev) instead")
    suite = get_suite(
        args.suite or "factbook",
        data_dir=args.data_dir,
        retriever=args.retriever,
        size=args.limit or None,
    )
    kind = args.agent or "research"
    entry = Entry(kind, model=args.model, checkpoint=args.checkpoint, label=args.label)
    with run_setup(args) as judge:
        result = run_suite(
            suite, entry, batch_size=args.batch_size, judge=judge, progress=not args.no_progress
        )
    print_result(result)
    if args.out:
        print(f"records: {result.write_records(args.out)}")
    if args.json:
        print(f"result: {result.write(args.json)}")
    if args.save:
        print(f"saved: {save_result(result, args.results_dir)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Evaluate and print EM / F1 / behaviour, overall and per question type."""
    if args.agent or args.suite:
        return _run_suite(args)
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
