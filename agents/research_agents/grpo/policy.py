"""Score token ids under a causal LM: per-token log-probs, only where they are needed.

The LM head (for SmolLM2 a 49k × 576 matrix, a fifth of the model) runs only on the positions
whose next token is trained on, not on prompt and observation positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def token_logprobs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    score_mask: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each token given the ones before it, at ``score_mask`` positions.

    Args:
        model: A causal LM with ``get_decoder()`` and ``get_output_embeddings()``.
        input_ids: Right-padded ids [B, L].
        attention_mask: 1 on real tokens [B, L].
        score_mask: 1 where a token's log-prob is wanted [B, L] (position 0 is never scored).
        temperature: Logits are divided by it, matching the sampler's log-probs (``0`` or
            ``1``: unscaled).
        with_entropy: Also return the entropy of the next-token distribution.
        entropy_grad: Keep the entropy's gradient (for an entropy bonus in the loss).

    Returns:
        ``(logp, entropy)``, each [B, L] with zeros outside ``score_mask``; entropy is ``None``
        unless asked for.
    """
    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (LM head)")
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    sel = score_mask[:, 1:].bool()
    logits = head(hidden[:, :-1][sel]).float()
    if temperature not in (0.0, 1.0):
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, 1:][sel]
    picked = logp_all.gather(-1, targets[:, None])[:, 0]
    out = torch.zeros(input_ids.shape, dtype=picked.dtype, device=picked.device)
    out[:, 1:] = out[:, 1:].masked_scatter(sel, picked)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = -(logp_all.exp() * logp_all).sum(-1)
            entropy = torch.zeros_like(out)
            entropy[:, 1:] = entropy[:, 1:].masked_scatter(sel, ent)
    return out, entropy


def freeze_lower_layers(model: PreTrainedModel, trainable_layers: int) -> int:
    """Train only the top ``trainable_layers`` decoder layers and the final norm.

    Embeddings (tied to the LM head in small models) and lower layers are frozen, so the
    backward pass stops at the first trainable layer: on a CPU this roughly halves step time.

    Returns:
        The number of trainable parameters.
    """
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: cannot find decoder layers to freeze")
    if not 1 <= trainable_layers <= len(layers):
        raise ValueError(f"trainable_layers: expected 1..{len(layers)}, got {trainable_layers}")
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in layers[len(layers) - trainable_layers :]:
        for p in layer.parameters():
            p.requires_grad_(True)
    norm = getattr(model.get_decoder(), "norm", None)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
