"""The GRPO token-level loss: clipped ratio, optional k3 KL, three aggregations."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The names are the config's (GRPOConfig.aggregation), which a suite reads without torch.
from research_agents.grpo.config import AGGREGATIONS, Aggregation


@dataclass
class LossOutput:
    """The loss and the statistics logged under ``loss/*`` and ``grpo/*``."""

    loss: torch.Tensor
    pg_loss: torch.Tensor
    kl: torch.Tensor
    clip_fraction: torch.Tensor
    ratio_mean: torch.Tensor
    entropy: torch.Tensor | None = None


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    """Per-token low-variance KL estimate ``exp(ref - logp) - (ref - logp) - 1`` (>= 0).

    ``clamp`` bounds the estimate to ``[-clamp, clamp]`` (verl's ``low_var_kl`` uses 10).
    """
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1
    return kl if clamp is None else torch.clamp(kl, min=-clamp, max=clamp)


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    how: Aggregation,
    *,
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    norm_len: float | None = None,
) -> torch.Tensor:
    """Reduce per-token ``values`` [B, T] over ``mask`` to a scalar.

    ``token_mean`` (DAPO): sum / number of mask tokens. ``seq_mean_token_mean`` (GRPO): mean of
    per-sequence token means. ``seq_mean_token_sum_norm`` (Dr. GRPO): sum / (sequences ×
    ``norm_len``). With gradient accumulation pass the whole mini-batch's ``total_tokens`` /
    ``total_seqs`` so micro-batch losses add up to the mini-batch loss.
    """
    mask = mask.to(values.dtype)
    if how == "token_mean":
        denom = total_tokens if total_tokens is not None else mask.sum().clamp(min=1)
        return (values * mask).sum() / denom
    n_seqs = total_seqs if total_seqs is not None else values.shape[0]
    if how == "seq_mean_token_mean":
        per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return per_seq.sum() / n_seqs
    if how == "seq_mean_token_sum_norm":
        length = norm_len if norm_len is not None else values.shape[-1]
        return (values * mask).sum() / (n_seqs * length)
    raise ValueError(f"unknown aggregation {how!r}; expected one of {AGGREGATIONS}")


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    aggregation: Aggregation = "token_mean",
    total_tokens: float | None = None,
    total_seqs: float | None = None,
    norm_len: float | None = None,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    kl_clamp: float | None = None,
    is_weights: torch.Tensor | None = None,
) -> LossOutput:
    """The clipped policy-gradient loss of GRPO, per token, aggregated.

    Args:
        logp: Log-probs of the taken tokens under the current policy, [B, T].
        old_logp: The same under the policy that sampled them, [B, T].
        advantages: One advantage per sequence, [B].
        mask: 1 where the token counts (sampled by the policy), 0 elsewhere, [B, T].
        eps_low: The ratio is clipped below at ``1 - eps_low``.
        eps_high: ... and above at ``1 + eps_high`` (DAPO's clip-higher when larger).
        beta: Weight of the k3 KL to the reference; needs ``ref_logp`` when > 0.
        ref_logp: Log-probs under the frozen reference, [B, T].
        aggregation: How per-token losses become one number (see :func:`aggregate`).
        total_tokens: Mask tokens in the whole mini-batch (gradient accumulation).
        total_seqs: Sequences in the whole mini-batch (gradient accumulation).
        norm_len: The constant length of ``seq_mean_token_sum_norm``.
        entropy: Per-token entropy of the policy, [B, T], with gradient when
            ``entropy_coef > 0`` (the bonus ``- entropy_coef * entropy`` is added to the loss).
        entropy_coef: Weight of the entropy bonus (ReSearch/verl: 0.001).
        kl_clamp: Clamp of the per-token k3 estimate (verl's ``low_var_kl``: 10).
        is_weights: Per-token weights of the policy loss, [B, T], no gradient: the truncated
            importance ratios of TIS (trainer over sampler probability) when the ratio's
            ``old_logp`` come from the trainer rather than the sampler.

    Returns:
        The loss and its parts; gradients flow only through ``logp`` at mask-1 tokens.
    """
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp")
    if entropy_coef > 0 and entropy is None:
        raise ValueError("entropy_coef > 0 needs entropy")
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach()[:, None]
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = torch.maximum(unclipped, clipped)
    if is_weights is not None:
        per_token = per_token * is_weights.detach()
    # Zero masked positions before aggregating so no gradient (or NaN) leaks from them.
    maskf = mask.to(logp.dtype)
    per_token = torch.where(mask.bool(), per_token, torch.zeros_like(per_token))
    kw = {"total_tokens": total_tokens, "total_seqs": total_seqs, "norm_len": norm_len}
    pg = aggregate(per_token, maskf, aggregation, **kw)
    kl = torch.zeros((), dtype=logp.dtype)
    if ref_logp is not None:
        kl_est = k3_kl(logp, ref_logp.detach(), kl_clamp)
        kl_tok = torch.where(mask.bool(), kl_est, torch.zeros_like(logp))
        kl = aggregate(kl_tok, maskf, aggregation, **kw)
    loss = pg + beta * kl if beta > 0 else pg
    ent = None
    if entropy is not None:
        ent_tok = torch.where(mask.bool(), entropy, torch.zeros_like(entropy))
        ent = aggregate(ent_tok, maskf, aggregation, **kw)
        if entropy_coef > 0:
            loss = loss - entropy_coef * ent
    with torch.no_grad():
        n = maskf.sum().clamp(min=1)
        was_clipped = (clipped > unclipped) & mask.bool()
        clip_fraction = was_clipped.to(logp.dtype).sum() / n
        ratio_mean = (ratio * maskf).sum() / n
    return LossOutput(
        loss,
        pg.detach(),
        kl.detach(),
        clip_fraction,
        ratio_mean,
        None if ent is None else ent.detach(),
    )
