"""Decode-time kernels for transformers models on a CPU: a growing KV cache and GQA decode.

A KV cache that is not re-copied every token, and grouped-query attention for a single query
token without repeating the KV heads.

Measured on one core with SmolLM2-135M at batch 32 and ~200 cached tokens (``torch.profiler``):
``DynamicCache`` concatenates every layer's whole cache on every decode step (``aten::cat``, 36% of
an fp32 decode step), and PyTorch's CPU flash-attention kernel, which ``sdpa`` dispatches to, is
about 5× slower in bfloat16 than a plain grouped matmul + softmax for one query token (55% of a
bf16 decode step). :class:`GrowingCacheLayer` writes new keys into a preallocated buffer;
:func:`grouped_decode_attention` (registered as ``"research_decode"``) handles one-token queries
and hands everything else (prefill, training) to ``sdpa`` unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION = "research_decode"
"""The attention-implementation name the generator sets on its model."""


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of one query token over the cache, the query heads grouped by KV head.

    Shapes as transformers passes them: ``query`` [B, H, Q, D], ``key``/``value`` [B, Hkv, L, D],
    ``attention_mask`` boolean [B, 1, Q, L] (True: attend) or additive float, or ``None``.
    Returns [B, Q, H, D]. Queries longer than one token, and dropout, go to ``sdpa``.
    """
    if query.shape[2] != 1 or (dropout > 0 and module.training):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    b, h, _, d = query.shape
    hkv, length = key.shape[1], key.shape[2]
    scale = scaling if scaling is not None else d**-0.5
    q = query.reshape(b, hkv, h // hkv, d)  # heads are grouped consecutively per KV head
    scores = torch.matmul(q, key.transpose(-1, -2)) * scale  # [B, Hkv, G, L]
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, :length]  # [B, 1, 1, L] broadcasts over Hkv and G
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, Hkv, G, D]
    return out.reshape(b, h, 1, d).transpose(1, 2), None


AttentionInterface.register(ATTENTION, grouped_decode_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)


class GrowingCacheLayer(DynamicLayer):
    """A ``DynamicLayer`` over a preallocated buffer: an update writes only the new tokens.

    ``keys`` / ``values`` are views of the first ``length`` positions, so everything that reads a
    ``DynamicLayer`` (masks, row selection, the generator's KV reuse) works unchanged. The buffer
    doubles when full.
    """

    def __init__(self, capacity: int = 256) -> None:
        super().__init__()
        self.capacity = max(1, capacity)
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def _views(self) -> None:
        assert self._k is not None and self._v is not None
        self.keys = self._k[:, :, : self.length]
        self.values = self._v[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``key_states`` / ``value_states`` [B, Hkv, n, D]; return the whole cache."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self._k is None or self.length + n > self._k.shape[2]:
            cap = max(self.capacity, 2 * (self.length + n))
            b, hkv, _, d = key_states.shape
            k = key_states.new_empty((b, hkv, cap, d))
            v = value_states.new_empty((b, hkv, cap, value_states.shape[-1]))
            if self._k is not None and self._v is not None and self.length:
                k[:, :, : self.length] = self._k[:, :, : self.length]
                v[:, :, : self.length] = self._v[:, :, : self.length]
            self._k, self._v = k, v
        assert self._v is not None
        self._k[:, :, self.length : self.length + n] = key_states
        self._v[:, :, self.length : self.length + n] = value_states
        self.length += n
        self._views()
        return self._k[:, :, : self.length], self._v[:, :, : self.length]

    def get_seq_length(self) -> int:
        """Cached positions."""
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows ``indices`` (in that order); copies only the filled positions."""
        if self._k is None or self._v is None:
            return
        k = self._k.new_empty((len(indices), *self._k.shape[1:]))
        v = self._v.new_empty((len(indices), *self._v.shape[1:]))
        k[:, :, : self.length] = self._k[indices, :, : self.length]
        v[:, :, : self.length] = self._v[indices, :, : self.length]
        self._k, self._v = k, v
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row ``repeats`` times."""
        if self._k is not None:
            rows = torch.arange(self._k.shape[0], device=self._k.device)
            self.batch_select_indices(rows.repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last ``|tokens_to_remove|`` positions."""
        if tokens_to_remove and self._k is not None:
            self.length = max(0, self.length - abs(tokens_to_remove))
            self._views()


def growing_cache(num_layers: int, capacity: int) -> DynamicCache:
    """A ``DynamicCache`` whose layers are :class:`GrowingCacheLayer` of ``capacity`` positions."""
    cache = DynamicCache()
    cache.layers = [GrowingCacheLayer(capacity) for _ in range(num_layers)]
    return cache


def use_decode_attention(model: Any) -> bool:
    """Switch ``model`` to :data:`ATTENTION` when it uses ``sdpa`` (returns whether it did).

    Only ``sdpa`` models are switched: the prefill and training paths stay exactly ``sdpa``'s.
    """
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if current == ATTENTION:
        return True
    if current != "sdpa":
        return False
    try:
        model.set_attn_implementation(ATTENTION)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
