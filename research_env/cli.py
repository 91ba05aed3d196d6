"""The ``searchqa`` command line: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules import their heavy dependencies (torch, faiss, fastapi) inside
``run`` so ``searchqa --help`` stays fast and works with only the env installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

#: subcommand -> (module, one-line help). Agent commands live in ``research_agents``.
COMMANDS: dict[str, tuple[str, str]] = {
    "index": ("research_env.commands.index", "build and save a BM25 or dense index of a corpus"),
    "serve": (
        "research_env.commands.serve",
        "serve a retriever over HTTP (ReSearch/Search-R1 APIs)",
    ),
    "train": ("research_agents.commands.train", "train the GRPO agent on SearchQA-v0"),
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


def build_parser() -> argparse.ArgumentParser:
    """Return the ``searchqa`` parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="searchqa", description="research-env: RL for LLMs that reason with search."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = _load(module_name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(
            _run=module.run, _accepts_overrides=getattr(module, "ACCEPTS_OVERRIDES", False)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``searchqa`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    if extra:
        if not getattr(args, "_accepts_overrides", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = extra
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
