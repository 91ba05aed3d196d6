"""``searchqa leaderboard --suite factbook``: run a suite's entries and render the leaderboard.

Runs every configured entry of the suite (or those named by ``--only``, or those listed in an
``--entries`` JSON file), stores each result as ``<results-dir>/<suite>/<slug>.json`` (and its
per-question records as ``.jsonl``), then renders ``--markdown`` (default
``benchmarks/LEADERBOARD.md``) and one PNG chart per suite beside it from every stored result,
grouped by protocol. An entry whose checkpoint is missing is skipped; its stored row is kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from research_agents.commands.evaluate import (
    add_run_options,
    default_benchmarks,
    get_suite_checked,
    run_setup,
)
from research_env.commands import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``leaderboard``'s options."""
    parser.add_argument("--suite", default="factbook", help="the suite to run (default factbook)")
    bench = default_benchmarks()
    parser.add_argument(
        "--results-dir",
        default=None,
        help=f"where results are stored and read from (default {bench / 'results'})",
    )
    parser.add_argument(
        "--markdown",
        default=None,
        help=f"the page to render (default {bench / 'LEADERBOARD.md'}; charts go beside it)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only entries whose label or slug contains NAME (repeatable)",
    )
    parser.add_argument(
        "--entries",
        metavar="FILE",
        help='a JSON file holding a list of entries, e.g. [{"agent": "research", "model": "DIR"}]',
    )
    parser.add_argument("--list", action="store_true", help="list the suite's entries and exit")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip entries that have a stored result under this suite's protocol",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="run nothing; re-render from stored results"
    )
    parser.add_argument(
        "--size", type=int, default=0, help="at most N questions per task (smoke runs)"
    )
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run the entries, store results, render the page; print what ran and what was skipped."""
    from research_agents.eval.leaderboard import run_leaderboard
    from research_agents.eval.suites import Entry

    args.results_dir = args.results_dir or str(default_benchmarks() / "results")
    args.markdown = args.markdown or str(default_benchmarks() / "LEADERBOARD.md")
    suite = get_suite_checked(args, args.suite, args.size or None)
    entries = list(suite.entries)
    if args.entries:
        path = Path(args.entries)
        if not path.is_file():
            raise UsageError(f"--entries: no file at {path} (expected a JSON file of entries)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise UsageError(f"{path}: expected a JSON list of entries")
        try:
            entries = [Entry.from_dict(d, where=f"{path}[{i}]") for i, d in enumerate(data)]
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    if args.only:
        wanted = [w.lower() for w in args.only]
        entries = [
            e for e in entries if any(w in e.display().lower() or w in e.slug() for w in wanted)
        ]
        if not entries and not args.render_only:
            raise UsageError(f"--only: no entry of suite {suite.name!r} matches {args.only}")
    if args.list:
        for entry in entries:
            where = entry.checkpoint or entry.model or "-"
            print(f"{entry.slug():48s} {entry.agent:14s} {where}")
        return 0
    if not entries and not args.render_only:
        raise UsageError(
            f"suite {suite.name!r} has no configured entries; pass --entries FILE.json "
            "or add rows with `searchqa eval --suite ... --save`"
        )
    if args.size:
        print(
            f"note: --size {args.size} asks fewer questions, a different protocol; its rows "
            "form their own group (use another --results-dir for smoke runs)"
        )
    with run_setup(args) as judge:
        report = run_leaderboard(
            suite,
            entries=entries,
            results_dir=args.results_dir,
            markdown=args.markdown,
            batch_size=args.batch_size,
            judge=judge,
            skip_existing=args.skip_existing,
            render_only=args.render_only,
            progress=not args.no_progress,
        )
    for label, reason in report["skipped"].items():
        print(f"skipped: {label}: {reason}")
    for chart in report["charts"]:
        print(f"chart: {chart}")
    return 0
