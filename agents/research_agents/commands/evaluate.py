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
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from research_env.commands import UsageError, choices_hint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``eval``'s options."""
    parser.add_argument("--checkpoint", help="a GRPO checkpoint folder (output_dir/checkpoint)")
    parser.add_argument("--model", help="a model name ('smollm2', 'tiny') or local folder")
    parser.add_argument(
        "--agent",
        help="agent kind: direct | naive-rag | iter-retgen | research | oracle (LLM), "
        "scripted | naive-reader (rules), or module:attribute (your Agent; the current folder "
        "is importable); uses --suite",
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
    harness.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME",
        help="evaluate only this task of the suite, e.g. hotpotqa (repeatable)",
    )
    harness.add_argument("--label", help="the row's name in tables")
    harness.add_argument("--json", help="write the result (metrics, protocol, provenance) here")
    harness.add_argument(
        "--save", action="store_true", help="store the result for `searchqa leaderboard`"
    )
    harness.add_argument(
        "--results-dir",
        default=None,
        help=f"where --save stores results (default {default_benchmarks() / 'results'}, "
        "beside the stored baselines)",
    )
    add_run_options(harness)


def default_benchmarks() -> Path:
    """The ``benchmarks/`` folder holding the stored leaderboard results.

    In a source checkout (``pip install -e .``) it is the checkout's own, wherever the command
    runs, so ``--save`` from another folder adds a row beside the stored baselines; otherwise
    ``./benchmarks``.
    """
    root = Path(__file__).resolve().parents[3]
    checkout = root / "benchmarks"
    if (checkout / "results").is_dir() and (root / "pyproject.toml").is_file():
        return checkout
    return Path("benchmarks")


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
        raise UsageError("--judge-url and --judge-model go together")
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
            searches = f"  searches {tm['searches']:.2f}" if "searches" in tm else ""
            print(
                f"    {typ:16s} n={int(tm['n']):4d}  EM {tm['em']:.3f}  F1 {tm['f1']:.3f}{searches}"
            )
        print(f"    ended: {task.summary.end_reasons}")


def check_suite_options(name: str, retriever: str | None) -> None:
    """Check a suite name, and that ``--retriever`` goes with a suite that uses it.

    Raises:
        UsageError: On an unknown suite (listing them) or a retriever the suite would ignore.
    """
    from research_agents.eval.suites import SUITES

    if name not in SUITES:
        raise UsageError(
            f"--suite: unknown suite {name!r}; expected one of: {', '.join(SUITES)}"
            + choices_hint(name, SUITES)
        )
    if retriever and name.startswith("factbook"):
        raise UsageError(
            f"--retriever: suite {name!r} fixes its retriever (BM25 over the Factbook corpus, "
            "part of its protocol); --retriever applies to research-paper and searchr1-paper"
        )


def get_suite_checked(args: argparse.Namespace, name: str, size: int | None) -> Any:
    """``get_suite`` with the options checked, its errors as one line, ``--task`` applied.

    With ``--task``, a paper suite needs only the named tasks' files under ``--data-dir``.
    """
    from research_agents.eval.suites import check_tasks, get_suite

    check_suite_options(name, args.retriever)
    wanted = getattr(args, "task", None) or []
    try:
        check_tasks(name, wanted)
    except ValueError as e:
        raise UsageError(f"--task: {e}") from None
    try:
        return get_suite(
            name, data_dir=args.data_dir, retriever=args.retriever, size=size, tasks=wanted
        )
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None


def check_agent(agent: str, model: str | None, checkpoint: str | None) -> None:
    """Check an agent kind and what it needs, before anything loads.

    ``module:attribute`` is imported from the current folder too (as ``python -m`` would).

    Raises:
        UsageError: On an unknown kind (listing them), a missing model / checkpoint, or user
            code that cannot be imported.
    """
    import importlib

    from research_agents.commands.runconfig import check_model
    from research_agents.eval.agents import LLM_KINDS, RULE_KINDS

    kinds = LLM_KINDS + RULE_KINDS
    if ":" in agent:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module, _, attribute = agent.partition(":")
        try:
            loaded = importlib.import_module(module)
        except ImportError as e:
            raise UsageError(f"--agent {agent}: cannot import {module!r} ({e})") from None
        if not hasattr(loaded, attribute):
            raise UsageError(f"--agent {agent}: module {module!r} has no {attribute!r}")
        return
    if agent not in kinds:
        raise UsageError(
            f"--agent: unknown agent {agent!r}; expected one of: {', '.join(kinds)} or "
            f"module:attribute{choices_hint(agent, kinds)}"
        )
    if agent in LLM_KINDS:
        if checkpoint:
            check_checkpoint(checkpoint)
        elif model:
            check_model(model, "--model")
        else:
            raise UsageError(f"--agent {agent}: an LLM agent needs --model or --checkpoint")


def check_checkpoint(path: str) -> None:
    """Check that ``path`` is a GRPO checkpoint folder (``model/config.json`` in it).

    Raises:
        UsageError: Naming the path and what was expected there.
    """
    model = Path(path) / "model" / "config.json"
    if not model.is_file():
        what = "no folder" if not Path(path).is_dir() else f"no {model}"
        raise UsageError(
            f"--checkpoint: {what} at {path} (a GRPO checkpoint is <output_dir>/checkpoint, "
            "holding model/config.json, written by `searchqa train`)"
        )


def _run_suite(args: argparse.Namespace) -> int:
    from research_agents.eval.harness import run_suite
    from research_agents.eval.leaderboard import save_result
    from research_agents.eval.suites import Entry

    if args.split:
        raise UsageError("--split goes with --preset; choose a suite (factbook-dev) instead")
    kind = args.agent or "research"
    check_suite_options(args.suite or "factbook", args.retriever)
    check_agent(kind, args.model, args.checkpoint)
    suite = get_suite_checked(args, args.suite or "factbook", args.limit or None)
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
        print(f"saved: {save_result(result, args.results_dir or default_benchmarks() / 'results')}")
    return 0


def _fields_of(settings: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name not in skip and getattr(settings, f.name) is not None
    }


def run(args: argparse.Namespace) -> int:
    """Evaluate and print EM / F1 / behaviour, overall and per question type."""
    if args.agent or args.suite or args.task:
        return _run_suite(args)
    from research_agents.commands.runconfig import check_model
    from research_agents.grpo.presets import PRESETS, get_preset

    if args.preset not in PRESETS:
        raise UsageError(
            f"--preset: unknown preset {args.preset!r}; expected one of: {', '.join(PRESETS)}"
            + choices_hint(args.preset, PRESETS)
        )
    if args.checkpoint:
        check_checkpoint(args.checkpoint)
    elif args.model:
        check_model(args.model, "--model")
    if args.retriever or args.data_dir:
        raise UsageError("--retriever / --data-dir go with --suite (this path uses --preset's)")
    from research_agents.grpo.trainer import GRPOTrainer

    config = get_preset(args.preset)
    overrides: dict[str, object] = {"tensorboard": False, "steps": 0, "beta": 0.0}
    if args.checkpoint:
        if (Path(args.checkpoint) / "config.json").is_file():
            # Played as trained: the checkpoint's episode rules and turn settings, its data.
            from research_agents.grpo.checkpoint import CheckpointError, read_settings, saved_config

            try:
                saved = saved_config(args.checkpoint)
                env, turns = read_settings(args.checkpoint)
            except CheckpointError as e:
                raise UsageError(f"--checkpoint: {e}") from None
            config = config.replace(
                **_fields_of(env),
                **_fields_of(turns, skip=("temperature",)),  # evaluation decodes greedily
                dataset=saved.dataset,
                eval_split=saved.eval_split,
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
    try:
        config = config.replace(**overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    from research_env.resolve import resolve_dataset

    try:
        resolve_dataset(config.eval_dataset or config.dataset, config.eval_split)
    except (ValueError, OSError) as e:
        raise UsageError(f"--split: {e}") from None
    trainer = GRPOTrainer(config)
    trainer._progress = not args.no_progress
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
