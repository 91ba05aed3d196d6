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
    try:
        from research_agents.eval.suites import SUITES

        suites = " | ".join(SUITES)
    except ImportError:  # an env-only install: the names alone are not worth a failure here
        suites = "factbook | factbook-multihop | research-paper | searchr1-paper | ..."
    parser.add_argument(
        "--suite", help=f"evaluation suite: {suites} (default with --agent: factbook)"
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
    from research_agents.eval.suites import Entry

    if args.split:
        raise UsageError("--split goes with --preset; choose a suite (factbook-dev) instead")
    kind = args.agent or "research"
    check_suite_options(args.suite or "factbook", args.retriever)
    check_agent(kind, args.model, args.checkpoint)
    suite = get_suite_checked(args, args.suite or "factbook", args.limit or None)
    entry = Entry(kind, model=args.model, checkpoint=args.checkpoint, label=args.label)
    return _play(args, suite, entry)


def _play(args: argparse.Namespace, suite: Any, entry: Any) -> int:
    """Run ``entry`` over ``suite``; print, and write / store what the options ask for."""
    from research_agents.eval.harness import run_suite
    from research_agents.eval.leaderboard import save_result

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


def _played_config(args: argparse.Namespace) -> Any:
    """The GRPOConfig whose settings a ``--checkpoint`` / ``--model`` evaluation plays.

    A checkpoint plays as it was trained: its ``config.json`` (episode rules, turn settings,
    data). Without one (an older checkpoint), and for ``--model``, ``--preset``'s.
    """
    from research_agents.grpo.presets import PRESETS, get_preset

    if args.preset not in PRESETS:
        raise UsageError(
            f"--preset: unknown preset {args.preset!r}; expected one of: {', '.join(PRESETS)}"
            + choices_hint(args.preset, PRESETS)
        )
    if args.checkpoint and (Path(args.checkpoint) / "config.json").is_file():
        from research_agents.grpo.checkpoint import CheckpointError, saved_config

        try:
            return saved_config(args.checkpoint)
        except CheckpointError as e:
            raise UsageError(f"--checkpoint: {e}") from None
    return get_preset(args.preset)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print EM / F1 / behaviour, overall and per question type.

    Every evaluation goes through the harness (:func:`research_agents.eval.harness.run_suite`):
    ``--suite`` / ``--agent`` name a suite; ``--checkpoint`` or ``--model`` alone play the
    ``research`` agent under the checkpoint's (or ``--preset``'s) settings on ``--split``.
    """
    if args.agent or args.suite or args.task:
        return _run_suite(args)
    from research_agents.commands.runconfig import check_model

    if args.checkpoint:
        check_checkpoint(args.checkpoint)
    elif args.model:
        check_model(args.model, "--model")
    if args.retriever or args.data_dir:
        raise UsageError("--retriever / --data-dir go with --suite (this path uses --preset's)")
    config = _played_config(args)
    split = args.split or config.eval_split
    from research_env.resolve import resolve_dataset

    dataset = config.eval_dataset or config.dataset
    try:
        resolve_dataset(dataset, split)
    except (ValueError, OSError) as e:
        raise UsageError(f"--split: {e}") from None
    from research_agents.eval.suites import Entry, Suite, Task

    source = "checkpoint" if args.checkpoint else f"preset {args.preset}"
    suite = Suite(
        name=f"{'checkpoint' if args.checkpoint else args.preset}-{split}",
        description=f"{dataset}, {split} split, the {source}'s settings",
        tasks=(Task(Path(str(dataset)).stem, str(dataset), split, args.limit),),
        env=config.env_settings(reward="em"),  # reported EM / F1 do not depend on it
        generation=config.turn_settings(),  # greedy
        seed=config.seed,
    )
    model = None if args.checkpoint else (args.model or config.model)
    entry = Entry("research", model=model, checkpoint=args.checkpoint, label=args.label)
    return _play(args, suite, entry)
