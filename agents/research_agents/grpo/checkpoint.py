"""Resumable checkpoints of a GRPO run: model, optimiser, step, elapsed time and RNG states.

A checkpoint folder holds ``model/`` (safetensors and tokenizer; ``searchqa eval --checkpoint``
loads it), ``trainer_state.json`` (step, elapsed time, the optimiser's and RNGs' plain values),
``trainer_state.safetensors`` (their tensors) and ``config.json`` (the run's GRPOConfig). No file
of a checkpoint is a pickle, so loading one cannot run code. A ``trainer_state.pt`` written by
earlier versions is still read, with ``torch.load(weights_only=True)`` (tensors and plain values
only; anything else is refused).

Saving writes everything to ``checkpoint.tmp<pid>/``, then renames ``checkpoint`` to
``checkpoint.old`` and the new folder to ``checkpoint``, then deletes ``checkpoint.old``. A kill
at any point leaves a complete checkpoint: during the writes, the previous ``checkpoint``; between
the two renames, ``checkpoint.old``, which :func:`find_checkpoint` moves back into place. The
``checkpoint.tmp<pid>/`` folder such a kill leaves behind (a full copy of the model) is deleted by
the next save or resume once its process is gone.

In a distributed run rank 0 writes the checkpoint and every rank loads it: the replicas are equal,
and each step's rollout seeds derive from ``(seed, step, rank)``, so no per-rank RNG state is kept.
The world size may change between a save and a resume (the update is defined over the whole batch).

This module writes a checkpoint from a trainer and loads one into a trainer. Everything that needs
only the folder (the file names, the JSON encoding of plain values, :func:`find_checkpoint`,
:func:`read_step`, :func:`read_trainer_state`, :func:`saved_config`, :func:`resume_config`) is in
:mod:`.checkpoint_files`, and re-exported here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from research_agents.grpo.checkpoint_files import (
    _FORMAT,
    _OWNER,
    CHECKPOINT,
    LEGACY_STATE,
    SHAPE_FIELDS,
    STATE,
    TENSORS,
    CheckpointError,
    _conflicts,
    _encode,
    _load_tensors,
    _one_line,
    _start_time,
    find_checkpoint,
    read_step,
    read_trainer_state,
    remove_orphans,
    resume_config,
    saved_config,
)

if TYPE_CHECKING:
    from research_agents.grpo.trainer import GRPOTrainer

__all__ = [
    "CHECKPOINT",
    "LEGACY_STATE",
    "SHAPE_FIELDS",
    "STATE",
    "TENSORS",
    "CheckpointError",
    "find_checkpoint",
    "load_checkpoint",
    "read_step",
    "read_trainer_state",
    "remove_orphans",
    "resume_config",
    "save_checkpoint",
    "saved_config",
]


# ---------------------------------------------------------------- save
def save_checkpoint(trainer: GRPOTrainer, final: Path) -> Path:
    """Write ``trainer``'s resumable state to ``final`` atomically; returns ``final``."""
    from safetensors.torch import save_file

    for orphan in remove_orphans(final):
        print(f"checkpoint: removed {orphan} (left by an interrupted save)", file=sys.stderr)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True)
    (tmp / _OWNER).write_text(json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())}))
    trainer.model.save_pretrained(tmp / "model", safe_serialization=True)
    trainer.tokenizer.save_pretrained(tmp / "model")
    rng_state = getattr(trainer.generator, "rng_state", None)
    tensors: dict[str, torch.Tensor] = {}
    state = {
        "format": _FORMAT,
        "step": trainer.step,
        "elapsed_s": trainer.elapsed_s,
        "world_size": trainer.dist.world_size,
        "optimizer": _encode(trainer.optimizer.state_dict(), tensors, "optimizer"),
        "rng": _encode(
            {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "generator": rng_state() if callable(rng_state) else None,
            },
            tensors,
            "rng",
        ),
    }
    save_file(tensors, str(tmp / TENSORS))
    (tmp / "config.json").write_text(json.dumps(trainer.config.to_dict(), indent=2, default=str))
    (tmp / STATE).write_text(json.dumps(state, indent=1))  # last: the folder is complete
    (tmp / _OWNER).unlink()
    old = final.with_name(final.name + ".old")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


# ---------------------------------------------------------------- load
def load_checkpoint(trainer: GRPOTrainer, path: Path) -> None:
    """Restore into ``trainer`` everything :func:`save_checkpoint` wrote to ``path``.

    Raises:
        CheckpointError: If a file is missing or unreadable, or the checkpoint does not fit the
            trainer (another model, LoRA rank or set of trainable layers); one line naming the
            path.
    """
    if (path / "config.json").is_file():
        conflicts = _conflicts(trainer.config, saved_config(path), SHAPE_FIELDS)
        if conflicts:
            raise CheckpointError(
                f"{path}: the checkpoint does not fit this run: {'; '.join(conflicts)}"
            )
    files = sorted((path / "model").glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path / 'model'}: no *.safetensors weights")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(_load_tensors(f))
    state = read_trainer_state(path)
    try:
        if trainer.config.lora_rank > 0:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(trainer.model, weights)
        else:
            missing, unexpected = trainer.model.load_state_dict(weights, strict=False)
            real_missing = [k for k in missing if "lm_head" not in k]
            if real_missing or unexpected:
                raise CheckpointError(
                    f"{path / 'model'}: weights do not fit the model: missing "
                    f"{real_missing[:5]}, unexpected {unexpected[:5]}"
                )
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step = int(state["step"])
        trainer.elapsed_s = float(state.get("elapsed_s", 0.0))
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: does not fit this run ({_one_line(e)})") from None
    set_rng_state = getattr(trainer.generator, "set_rng_state", None)
    if rng.get("generator") is not None and callable(set_rng_state):
        set_rng_state(rng["generator"])
    trainer.generator.sync_weights(trainer.model)
