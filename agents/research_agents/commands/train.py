"""``searchqa train --preset NAME [--key value ...]``: run GRPO on SearchQA-v0."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from research_env.commands import UsageError

ACCEPTS_OVERRIDES = True
"""Unknown ``--field value`` pairs reach :func:`run` as ``args.overrides``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``train``'s options."""
    parser.add_argument(
        "--preset", default=None, help="a GRPOConfig preset (default factbook-smollm2)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a run config (.yaml/.json): GRPOConfig fields, optionally `preset: NAME`; "
        "a run's saved run_config.json works too",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue output_dir/checkpoint with its saved config (fails if there is none)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no live progress bar (step lines only)"
    )
    parser.epilog = (
        "Any GRPOConfig field can follow as --field value, --field=value or field=value, "
        "e.g. --lr 1e-5 --steps 20 extra.note=baseline. Everything is checked before a model loads."
    )


def more_help() -> str:
    """The GRPOConfig field table appended to ``train --help``."""
    from research_agents.commands.runconfig import fields_help

    try:
        return fields_help()
    except ModuleNotFoundError as e:  # an env-only install: say what the field list needs
        from research_env.commands import missing_extra

        return f"(the list of GRPOConfig fields {missing_extra(e) or e})\n"


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["--lr", "1e-5", "--steps", "3"]`` into typed GRPOConfig overrides.

    See :func:`research_agents.commands.runconfig.parse_overrides`.
    """
    from research_agents.commands.runconfig import parse_overrides as parse

    return parse(pairs)


def _resume_config(args: argparse.Namespace, requested: Any) -> Any:
    """``--resume``: the checkpoint's saved config, with the fields this command line set.

    Fields that decide the weights' shapes (model, LoRA, trainable layers, dtype) must match
    the checkpoint's; others (``--steps 200``) apply. Read before any model loads.
    """
    from research_agents.commands.runconfig import load_config_file
    from research_agents.grpo.checkpoint import SHAPE_FIELDS, CheckpointError, resume_config

    explicit = set(parse_overrides(getattr(args, "overrides", None) or []))
    if args.config:
        explicit |= set(load_config_file(args.config)) - {"preset"}
    if args.preset:
        explicit |= set(SHAPE_FIELDS)
    try:
        return resume_config(requested, explicit)
    except CheckpointError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    """Train; print where metrics, checkpoint and curves went."""
    from research_agents.commands.runconfig import (
        check_config,
        describe,
        resolve_config,
        save_run_config,
    )

    config, preset = resolve_config(
        args.preset, args.config, getattr(args, "overrides", None) or []
    )
    if args.resume:
        config = _resume_config(args, config)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, default=str))
        return 0
    check_config(config)  # everything a user can get wrong, before any model loads
    from research_agents.grpo.trainer import GRPOTrainer

    if os.environ.get("RANK", "0") == "0":  # under torchrun / accelerate, rank 0 reports
        print(f"run configuration ({preset}; * = changed):\n{describe(config, preset)}")
        print(f"config: {save_run_config(config)}", flush=True)
    from research_agents.grpo.checkpoint import CheckpointError

    try:
        trainer = GRPOTrainer(config, resume=bool(args.resume))
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    start = trainer.step
    history = trainer.train(progress=not args.no_progress)
    if not trainer.dist.is_main:  # under torchrun / accelerate, rank 0 alone reports
        return 0
    if not history:
        print("no step ran (steps or time_budget_s already reached)")
    print(f"trained steps {start}..{trainer.step} -> {trainer.output_dir}")
    print(f"metrics: {trainer.output_dir / 'metrics.jsonl'}")
    print(f"checkpoint: {trainer.output_dir / 'checkpoint'}")
    plot = trainer.output_dir / "curves.png"
    if plot.exists():
        print(f"curves: {plot}")
    return 0
