"""``searchqa train --preset NAME [--key value ...]``: run GRPO on SearchQA-v0."""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import fields
from typing import Any

ACCEPTS_OVERRIDES = True
"""Unknown ``--field value`` pairs reach :func:`run` as ``args.overrides``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``train``'s options."""
    parser.add_argument("--preset", default="factbook-smollm2", help="a GRPOConfig preset")
    parser.add_argument("--resume", action="store_true", help="resume from output_dir/checkpoint")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.epilog = "Any GRPOConfig field can follow as --field value, e.g. --lr 1e-5 --steps 20."


def _convert(name: str, raw: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(f"--{name}: expected one of {args}, got {raw!r}")
        return raw
    is_union = origin is typing.Union or isinstance(annotation, types.UnionType)
    kinds = [a for a in args if a is not type(None)] if is_union else [annotation]
    if is_union and type(None) in args and raw.lower() in ("none", "null"):
        return None
    kind = typing.get_origin(kinds[0]) or kinds[0]
    if kind is bool:
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"--{name}: expected true/false, got {raw!r}")
    if kind in (tuple, dict):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = [v for v in raw.split(",") if v]
        return tuple(value) if isinstance(value, list) else value
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"--{name}: expected {kind.__name__}, got {raw!r}") from None
    return raw


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["--lr", "1e-5", "--steps", "3"]`` into typed GRPOConfig overrides."""
    from research_agents.grpo.config import GRPOConfig

    hints = typing.get_type_hints(GRPOConfig)
    known = {f.name for f in fields(GRPOConfig)}
    out: dict[str, Any] = {}
    i = 0
    while i < len(pairs):
        key = pairs[i]
        if not key.startswith("--"):
            raise ValueError(f"expected --field, got {key!r}")
        name = key[2:].replace("-", "_")
        if "=" in name:
            name, raw = name.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(pairs):
                raise ValueError(f"--{name}: missing value")
            raw = pairs[i + 1]
            i += 2
        if name not in known:
            raise ValueError(
                f"--{name}: not a GRPOConfig field (see `searchqa train --print-config`)"
            )
        out[name] = _convert(name, raw, hints[name])
    return out


def run(args: argparse.Namespace) -> int:
    """Train; print where metrics, checkpoint and curves went."""
    from research_agents.grpo.config import get_preset
    from research_agents.grpo.trainer import GRPOTrainer

    config = get_preset(args.preset).replace(
        **parse_overrides(getattr(args, "overrides", None) or [])
    )
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2, default=str))
        return 0
    trainer = GRPOTrainer(config, resume=bool(args.resume))
    start = trainer.step
    history = trainer.train()
    if not trainer.dist.is_main:  # under torchrun / accelerate, rank 0 alone reports
        return 0
    for m in history:
        print(
            f"step {m['train/step']:4d}  reward {m['reward/mean']:.3f}  EM {m['reward/em']:.3f}"
            f"  F1 {m['reward/f1']:.3f}  {m['perf/step_s']:.1f} s",
            flush=True,
        )
    print(f"trained steps {start}..{trainer.step} -> {trainer.output_dir}")
    print(f"metrics: {trainer.output_dir / 'metrics.jsonl'}")
    print(f"checkpoint: {trainer.output_dir / 'checkpoint'}")
    plot = trainer.output_dir / "curves.png"
    if plot.exists():
        print(f"curves: {plot}")
    return 0
