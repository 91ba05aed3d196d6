"""A policy's weights in the form vLLM loads them: LoRA merged, as tensors or a folder.

:func:`policy_weights` streams a transformers or peft model's weights under checkpoint names
(LoRA deltas added, adapter tensors left out): what
:meth:`~research_agents.generation.vllm.VLLMGenerator.sync_weights` hands vLLM's in-place reload.
:func:`save_for_vllm` writes them, with the config and tokenizer, as the safetensors folder vLLM
starts from; :func:`model_folder` and :func:`folder_matches` tell when the folder a model was
loaded from can be used as it is. None of it imports vLLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["folder_matches", "model_folder", "policy_weights", "save_for_vllm"]


def policy_weights(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``model``'s weights under checkpoint names, LoRA adapters merged in.

    A plain transformers model yields its ``state_dict()``. A peft model yields its base model's
    weights with ``W + ΔW`` for every LoRA layer (``.base_layer.`` dropped from the names,
    adapter tensors skipped), without touching the model itself.
    """
    base = model
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if not (hasattr(module, "base_layer") and hasattr(module, "get_delta_weight")):
                continue
            if getattr(module, "merged", False) or getattr(module, "disable_adapters", False):
                continue
            adapters = [a for a in getattr(module, "active_adapters", []) if a in module.lora_A]
            if adapters:
                delta = module.get_delta_weight(adapters[0])
                for a in adapters[1:]:
                    delta = delta + module.get_delta_weight(a)
                deltas[name] = delta
        for key, tensor in base.state_dict().items():
            if ".lora_" in key:
                continue
            name = key.replace(".base_layer.", ".")
            module_name, _, leaf = name.rpartition(".")
            if leaf == "weight" and module_name in deltas:
                tensor = tensor + deltas[module_name].to(tensor.dtype)
            yield name, tensor.detach()


def save_for_vllm(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path
) -> Path:
    """Write ``model`` (LoRA merged) and ``tokenizer`` as a safetensors folder vLLM can load."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base: Any = model
    if hasattr(model, "peft_config"):
        base = getattr(model, "get_base_model")()  # noqa: B009 (peft models only)
    base.config.save_pretrained(folder)
    if getattr(base, "generation_config", None) is not None:
        base.generation_config.save_pretrained(folder)
    seen: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in policy_weights(model):
        ptr = tensor.data_ptr()
        if ptr in seen:  # tied weights (e.g. lm_head = embed_tokens) are stored once
            continue
        seen.add(ptr)
        tensors[name] = tensor.contiguous().cpu()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(folder)
    return folder


def folder_matches(model: Any, folder: Path) -> bool:
    """Whether ``folder``'s safetensors hold exactly ``model``'s current weights."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return False
    on_disk: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            on_disk.update(dict.fromkeys(sf.keys(), f))
    handles: dict[Path, Any] = {}
    try:
        for name, tensor in policy_weights(model):
            if name not in on_disk:
                if name.startswith("lm_head.") and model.config.tie_word_embeddings:
                    continue
                return False
            f = on_disk[name]
            if f not in handles:
                handles[f] = safe_open(str(f), framework="pt").__enter__()
            stored = handles[f].get_tensor(name)
            if stored.shape != tensor.shape or not torch.equal(stored.to(tensor.dtype), tensor):
                return False
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)
    return True


def model_folder(model: Any) -> Path | None:
    """The on-disk safetensors folder ``model`` was loaded from, if any (plain models only)."""
    if hasattr(model, "peft_config"):
        return None
    path = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "")
    folder = Path(str(path)) if path else None
    if folder is None or not (folder / "config.json").is_file():
        return None
    if not any(folder.glob("*.safetensors")):
        return None
    return folder
