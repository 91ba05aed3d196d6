"""``searchqa view RUN_OR_RECORDS``: a static HTML page of a run's sampled episodes.

Examples::

    searchqa view runs/factbook-smollm2              # its samples.jsonl -> view.html beside it
    searchqa view records.jsonl --out records.html   # per-question records of `searchqa eval`
    searchqa view zero_shot.jsonl trained.jsonl      # the same questions, before / after

Open the page in any browser; it needs no server (see :mod:`research_env.view`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from research_env.commands import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``searchqa view``."""
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="RUN_OR_RECORDS",
        help="a training run folder (its samples.jsonl) or a JSONL file of samples / eval "
        "records; several are compared before/after in the order given",
    )
    parser.add_argument("--out", type=Path, help="the HTML page to write (default: view.html)")
    parser.add_argument("--title", help="the page's title (default: the run's name)")


def run(args: argparse.Namespace) -> int:
    """Write the page; print where it went and what it holds."""
    from research_env.view import ViewError, describe, load_sources, write_view

    try:
        episodes = load_sources(args.sources)
        page = write_view(args.sources, args.out, title=args.title)
    except ViewError as e:
        raise UsageError(str(e)) from None
    print(describe(episodes))
    print(f"view: {page}")
    print(f"open it: file://{page.resolve()}")
    return 0
