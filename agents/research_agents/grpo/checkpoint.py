"""Resumable checkpoints of a GRPO run: model, optimiser, step, elapsed time and RNG states.

A checkpoint folder holds ``model/`` (safetensors and tokenizer; ``searchqa eval --checkpoint``
loads it), ``trainer_state.pt`` and ``config.json``. It is written to a temporary folder and
renamed into place, so a kill during a save leaves the previous checkpoint intact.

In a distributed run rank 0 writes the checkpoint and every rank loads it: the replicas are equal,
and each step's rollout seeds derive from ``(seed, step, rank)``, so no per-rank RNG state is kept.
The world size may change between a save and a resume (the update is defined over the whole batch).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from research_agents.grpo.trainer import GRPOTrainer

CHECKPOINT = "checkpoint"
"""The checkpoint folder's name inside a run's ``output_dir``."""


def save_checkpoint(trainer: GRPOTrainer, final: Path) -> Path:
    """Write ``trainer``'s resumable state to ``final`` atomically; returns ``final``."""
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    trainer.model.save_pretrained(tmp / "model", safe_serialization=True)
    trainer.tokenizer.save_pretrained(tmp / "model")
    rng_state = getattr(trainer.generator, "rng_state", None)
    state = {
        "step": trainer.step,
        "elapsed_s": trainer.elapsed_s,
        "world_size": trainer.dist.world_size,
        "optimizer": trainer.optimizer.state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "generator": rng_state() if callable(rng_state) else None,
        },
    }
    torch.save(state, tmp / "trainer_state.pt")
    (tmp / "config.json").write_text(json.dumps(trainer.config.to_dict(), indent=2, default=str))
    old = final.with_name(final.name + ".old")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def load_checkpoint(trainer: GRPOTrainer, path: Path) -> None:
    """Restore into ``trainer`` everything :func:`save_checkpoint` wrote to ``path``.

    Raises:
        ValueError: If the saved weights do not fit the trainer's model.
    """
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for f in sorted((path / "model").glob("*.safetensors")):
        weights.update(load_file(str(f)))
    if trainer.config.lora_rank > 0:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(trainer.model, weights)
    else:
        missing, unexpected = trainer.model.load_state_dict(weights, strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]
        if real_missing or unexpected:
            raise ValueError(
                f"checkpoint {path}: missing {real_missing[:5]}, unexpected {unexpected[:5]}"
            )
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.step = int(state["step"])
    trainer.elapsed_s = float(state.get("elapsed_s", 0.0))
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    set_rng_state = getattr(trainer.generator, "set_rng_state", None)
    if rng.get("generator") is not None and callable(set_rng_state):
        set_rng_state(rng["generator"])
    trainer.generator.sync_weights(trainer.model)
