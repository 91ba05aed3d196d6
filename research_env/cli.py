"""The ``searchqa`` command line: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules import their heavy dependencies (torch, faiss, fastapi) inside
``run`` so ``searchqa --help`` stays fast and works with only the env installed.

A command reports bad input by raising :class:`~research_env.commands.UsageError`; ``main``
prints it as one line, ``searchqa CMD: message``, and returns 2. A missing optional module
(torch in an env-only install, httpx for ``remote:``) is reported the same way, naming the
extra to install. A module may define ``more_help() -> str``: text appended to its ``--help``,
built only when help is asked for (so listing commands imports nothing heavy).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from research_env.commands import UsageError, missing_extra

#: subcommand -> (module, one-line help). Agent commands live in ``research_agents``.
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("research_env.commands.index", "build and save a BM25 or dense index of a corpus"),
    "serve": (
        "research_env.commands.serve",
        "serve a retriever over HTTP (ReSearch/Search-R1 APIs)",
    ),
    "train": ("research_agents.commands.train", "train the GRPO agent on SearchQA-v0"),
    "view": ("research_env.commands.view", "write a static HTML page of a run's episodes"),
    "eval": ("research_agents.commands.evaluate", "evaluate a checkpoint, model or baseline"),
    "leaderboard": ("research_agents.commands.leaderboard", "run and render a leaderboard suite"),
}


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return None  # the subcommand is not implemented in this install
        raise


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: ``--help`` appends the module's ``more_help()``, if any."""

    more_help: Callable[[], str] | None = None

    def format_help(self) -> str:
        text = super().format_help()
        if self.more_help is not None:
            text += "\n" + self.more_help()
        return text


def build_parser() -> argparse.ArgumentParser:
    """Return the ``searchqa`` parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="searchqa", description="research-env: RL for LLMs that reason with search."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = _load(module_name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.more_help = getattr(module, "more_help", None)
        cmd.set_defaults(
            _run=module.run, _accepts_overrides=getattr(module, "ACCEPTS_OVERRIDES", False)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``searchqa`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except ModuleNotFoundError as exc:  # a --help that needs an extra (train's field list)
        advice = missing_extra(exc)
        if advice is None:
            raise
        print(f"searchqa: {advice}", file=sys.stderr)
        return 2
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    if extra:
        if not getattr(args, "_accepts_overrides", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = extra
    try:
        code: int = args._run(args)
    except UsageError as exc:
        print(f"searchqa {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        advice = missing_extra(exc)
        if advice is None:
            raise
        print(f"searchqa {args.command}: {advice}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
