"""Checks of a ``searchqa train`` run config against the world, before any model loads.

:func:`check_config` looks at what the trainer would otherwise find out only after loading the
model: reward, template and protocol names, the template file, the reward hook's import, the model
folder (:func:`check_model`, which ``searchqa eval`` uses too), the datasets and their question
types, and the retriever spec. Building the config from preset, file and overrides is
:mod:`research_agents.commands.runconfig`'s job.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_env.commands import UsageError, choices_hint

if TYPE_CHECKING:
    from research_agents.grpo.config import GRPOConfig

__all__ = ["check_config", "check_model"]


def _check_types(cfg: GRPOConfig, examples: list[Any]) -> None:
    present = sorted({str(e.metadata.get("type")) for e in examples if e.metadata.get("type")})
    wanted = [("question_types", t) for t in cfg.question_types]
    wanted += [("curriculum", t) for _, stage in cfg.curriculum for t in stage]
    for field_name, typ in wanted:
        if typ not in present:
            listing = ", ".join(present) if present else "none: its examples carry no type"
            raise UsageError(
                f"{field_name}: {typ!r} is not a question type of {cfg.dataset}/"
                f"{cfg.train_split}; expected one of: {listing}{choices_hint(typ, present)}"
            )


def check_model(name: str, field_name: str = "model") -> None:
    """Check that ``name`` is ``smollm2``, ``tiny`` or a local model folder, without loading it.

    Raises:
        UsageError: Naming the field and the valid choices (nothing is ever downloaded).
    """
    from research_agents.models import SMOLLM2, TINY, smollm2_gguf_path

    if name in (SMOLLM2, TINY):
        try:
            smollm2_gguf_path()  # both need SmolLM2's tokenizer
        except FileNotFoundError as e:
            raise UsageError(f"{field_name} {name!r}: {e}") from None
        return
    path = Path(name)
    if not path.is_dir():
        from research_agents.grpo.presets import PRESETS

        writer = next(
            (k for k, p in PRESETS.items() if f"{p.output_dir}/checkpoint/model" == name), None
        )
        if writer is not None:  # a later stage of a recipe, started before the earlier one
            raise UsageError(
                f"{field_name}: no model folder at {name!r} yet; it is the checkpoint of "
                f"`searchqa train --preset {writer}`, so run that first"
            )
        raise UsageError(
            f"{field_name}: no model folder at {name!r}; expected {SMOLLM2!r}, {TINY!r} or a "
            "local folder with config.json (nothing is downloaded)"
            + choices_hint(name, [SMOLLM2, TINY])
        )
    if not (path / "config.json").is_file():
        raise UsageError(f"{field_name}: {name!r} has no config.json (not a model folder)")


def check_config(cfg: GRPOConfig) -> None:
    """Check what the trainer would otherwise discover after loading the model.

    Names (reward, template, protocol), files (template file, model folder, jsonl datasets),
    the reward hook's import, the retriever spec, and that every question type asked for
    occurs in the training split. Loads the dataset (cheap) but no model.

    Raises:
        UsageError: The first problem, as one line naming the field and the valid choices.
    """
    from research_env.resolve import is_dataset_file, resolve_dataset, resolve_retriever
    from research_env.rewards import REWARD_PRESETS
    from research_env.templates import TEMPLATES

    if cfg.reward not in REWARD_PRESETS:
        raise UsageError(
            f"reward: unknown reward {cfg.reward!r}; expected one of: {', '.join(REWARD_PRESETS)}"
            + choices_hint(cfg.reward, REWARD_PRESETS)
        )
    if cfg.template_file:
        path = cfg.template_file.rsplit(":", 1)[0] if ".py:" in cfg.template_file else None
        file = Path(path or cfg.template_file)
        if not file.is_file():
            raise UsageError(f"template_file: no file at {file}")
    elif cfg.template not in TEMPLATES:
        raise UsageError(
            f"template: unknown template {cfg.template!r}; expected one of: "
            f"{', '.join(TEMPLATES)}{choices_hint(cfg.template, TEMPLATES)}"
        )
    if cfg.reward_hook:
        module, sep, attr = cfg.reward_hook.partition(":")
        if not sep or not module or not attr:
            raise UsageError(f"reward_hook: expected 'module:function', got {cfg.reward_hook!r}")
        try:
            fn = getattr(importlib.import_module(module), attr, None)
        except ImportError as e:
            raise UsageError(f"reward_hook: cannot import {module!r} ({e})") from None
        if not callable(fn):
            raise UsageError(f"reward_hook: {cfg.reward_hook!r} is not a callable")
    check_model(cfg.model)
    if is_dataset_file(cfg.dataset):
        if not cfg.eval_dataset:
            raise UsageError(
                f"eval_dataset: dataset {cfg.dataset!r} is one file, so evaluating on it would "
                "score the training questions; pass the held-out file as --eval_dataset FILE"
            )
        if cfg.retriever.split(":")[0] in ("bm25", "dense", "hybrid"):
            raise UsageError(
                f"retriever: {cfg.retriever!r} searches the Factbook corpus, not {cfg.dataset!r}'s;"
                " pass --retriever remote:http://127.0.0.1:8000 (`searchqa serve` over your "
                "corpus) or closed (questions that carry metadata['context'])"
            )
    eval_dataset = cfg.eval_dataset or cfg.dataset
    eval_split = "train" if is_dataset_file(eval_dataset) else cfg.eval_split
    for split, dataset, field_name in (
        (cfg.train_split, cfg.dataset, "dataset"),
        (eval_split, eval_dataset, "eval_dataset" if cfg.eval_dataset else "eval_split"),
    ):
        try:
            examples = resolve_dataset(dataset, split)
        except (ValueError, FileNotFoundError, OSError) as e:
            raise UsageError(f"{field_name}: {e}") from None
        if field_name == "dataset":
            _check_types(cfg, examples)
    try:
        resolve_retriever(cfg.retriever)
    except (ValueError, TypeError) as e:
        raise UsageError(f"retriever: {e}") from None
