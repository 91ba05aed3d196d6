"""The GRPO update: K epochs of the clipped token-level loss over mini-batches of one batch.

:class:`PolicyUpdate` is everything :meth:`GRPOTrainer.train_step
<research_agents.grpo.trainer.GRPOTrainer.train_step>` does after the rollouts and the
advantages:

* trajectories cut short (token or turn budget) or hit by a retrieval error are dropped
  (``mask_truncated``, ``mask_retrieval_failed``);
* mini-batches are drawn from the whole batch (every rank's kept trajectories, in rank order);
  each rank runs its own members with the whole mini-batch's token and sequence counts as the
  normaliser, so the summed gradients are the single-process gradient;
* each mini-batch is cut into length-sorted micro-batches of at most ``micro_batch_tokens``
  padded tokens, whose gradients accumulate;
* the ratio's old log-probs are the sampler's, or the trainer's own with the truncated
  importance-sampling weight (``logprob_correction``), and the mismatch between the two is
  measured either way (``train/logprob_mismatch``);
* the loss itself is :func:`research_agents.grpo.loss.grpo_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from research_agents.grpo.config import GRPOConfig
from research_agents.grpo.loss import grpo_loss
from research_agents.grpo.policy import token_logprobs
from research_agents.grpo.rollout import Trajectory

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from research_agents.grpo.distributed import Dist

__all__ = ["PolicyUpdate", "keep"]

Item = tuple[Trajectory, float]
"""A kept trajectory and its advantage."""


def keep(t: Trajectory, config: GRPOConfig) -> bool:
    """Whether ``t`` enters the loss.

    Not when cut short (``mask_truncated``) or hit by a retrieval error
    (``mask_retrieval_failed``).
    """
    if config.mask_truncated and t.truncated:
        return False
    return not (config.mask_retrieval_failed and t.retrieval_failed)


class PolicyUpdate:
    """One update of ``model`` on one batch (build one per step: it holds that step's counts).

    Args:
        config: The run's settings (epochs, mini-batch sizes, clip range, KL, entropy, masks).
        model: The policy being trained.
        ref_model: The frozen reference for the KL term (``None`` when ``beta`` is 0).
        optimizer: The policy's optimiser.
        dist: The process group (a single process is a group of one).
        pad_id: The tokenizer's pad id (right padding).
        autocast: A factory of the forward/backward's autocast context (bf16 or disabled).
        correction: ``"none"``, ``"recompute"`` or ``"tis"`` (``"auto"`` resolved).
    """

    def __init__(
        self,
        config: GRPOConfig,
        model: PreTrainedModel,
        ref_model: PreTrainedModel | None,
        optimizer: torch.optim.Optimizer,
        dist: Dist,
        pad_id: int,
        autocast: Callable[[], AbstractContextManager[Any]],
        correction: str,
    ) -> None:
        self.config = config
        self.model = model
        self.ref_model = ref_model
        self.optimizer = optimizer
        self.dist = dist
        self.pad_id = pad_id
        self._autocast = autocast
        self.correction = correction
        self._mismatch = [0.0, 0.0, 0.0, 0.0]  # sum |d|, tokens, max |d|, sum of TIS weights
        self._stepped = False  # has an optimiser step been taken in this update
        self.trainer_old: dict[int, torch.Tensor] = {}
        """The trainer's log-probs of each trajectory before the update (by ``id``), when a
        correction needs them after the first optimiser step."""

    def run(
        self, trajs: list[Trajectory], adv: torch.Tensor, step: int, lr: float
    ) -> dict[str, float]:
        """K epochs of mini-batch updates on this rank's trajectories at learning rate ``lr``.

        Mini-batches are drawn from the whole batch (every rank's kept trajectories, in rank
        order): each rank runs its own members with the whole mini-batch's token and sequence
        counts as normaliser, and the summed gradients are the single-process gradient.
        """
        cfg = self.config
        items = [(t, float(a)) for t, a in zip(trajs, adv.tolist()) if keep(t, cfg)]
        # (generated tokens, needs a forward pass) of every kept trajectory of every rank
        table = self.dist.gather([(t.num_generated, a != 0.0 or cfg.beta > 0) for t, a in items])
        offset = sum(len(part) for part in table[: self.dist.rank])
        everyone = [row for part in table for row in part]
        sums = {"loss": 0.0, "pg": 0.0, "kl": 0.0, "clip": 0.0, "ratio": 0.0, "entropy": 0.0}
        counts = {"tokens": 0, "updates": 0, "masked": len(trajs) - len(items)}
        grad_norm = 0.0
        rng = np.random.default_rng([cfg.seed, step, 1])
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        # The trainer's own log-probs before the update: free in the first forward of a single
        # optimiser step, otherwise one extra no-grad pass (only when a correction needs them).
        single = cfg.epochs == 1 and len(everyone) <= cfg.mini_batch_size
        if self.correction != "none" and not single:
            needed = [(t, a) for t, a in items if a != 0.0 or cfg.beta > 0]
            self.trainer_old = self._score_old(needed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for _ in range(cfg.epochs):
            order = rng.permutation(len(everyone))
            for mb_start in range(0, len(order), cfg.mini_batch_size):
                mini = [int(i) for i in order[mb_start : mb_start + cfg.mini_batch_size]]
                if not any(everyone[i][1] for i in mini):
                    continue
                total_tokens = float(max(sum(everyone[i][0] for i in mini), 1))
                mine = [items[i - offset] for i in mini if offset <= i < offset + len(items)]
                live = [(t, a) for t, a in mine if a != 0.0 or cfg.beta > 0]
                self.optimizer.zero_grad(set_to_none=True)
                for micro in self._micro_batches(live):
                    out = self._micro_loss(micro, total_tokens, float(len(mini)))
                    out["loss"].backward()
                    n_tok = sum(t.num_generated for t, _ in micro)
                    for k in ("pg", "kl", "clip", "ratio", "entropy"):
                        sums[k] += float(out[k]) * (
                            n_tok if k in ("clip", "ratio", "entropy") else 1
                        )
                    sums["loss"] += float(out["loss"].detach())
                    counts["tokens"] += n_tok
                self.dist.all_reduce_grads(params)
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                grad_norm += float(norm)
                self.optimizer.step()
                self._stepped = True
                counts["updates"] += 1
        local = {**sums, "tokens": float(counts["tokens"]), "masked": float(counts["masked"])}
        mm_sum, mm_n, mm_max, tis_sum = self._mismatch
        local.update({"mm_sum": mm_sum, "mm_n": mm_n, "tis_sum": tis_sum})
        totals = dict(zip(local, self.dist.all_sum(list(local.values()))))
        (mm_max,) = self.dist.all_max([mm_max])
        mismatch = {
            "train/logprob_mismatch": totals["mm_sum"] / max(totals["mm_n"], 1.0),
            "train/logprob_mismatch_max": mm_max,
        }
        if self.correction == "tis":
            n_mm = totals["mm_n"]
            mismatch["train/tis_weight_mean"] = totals["tis_sum"] / n_mm if n_mm else 1.0
        n_tokens = max(totals["tokens"], 1.0)
        n_up = max(counts["updates"], 1)
        return {
            "loss/total": totals["loss"] / n_up,
            "loss/pg": totals["pg"] / n_up,
            "grpo/kl": totals["kl"] / n_up,
            "grpo/clip_fraction": totals["clip"] / n_tokens,
            "grpo/ratio_mean": totals["ratio"] / n_tokens if totals["tokens"] else 1.0,
            "grpo/entropy": totals["entropy"] / n_tokens,
            "grpo/grad_norm": grad_norm / n_up,
            "grpo/updates": float(counts["updates"]),
            "grpo/masked_trajectories": totals["masked"],
            "perf/train_tokens": totals["tokens"],
            **mismatch,
        }

    def _score_old(self, items: list[tuple[Trajectory, float]]) -> dict[int, torch.Tensor]:
        """The trainer's log-probs of each trajectory's response ids, before any update step.

        Keyed by ``id(trajectory)``; one no-grad forward over the same micro-batches as the
        update.
        """
        out: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            for micro in self._micro_batches(items):
                ids, attn, mask, _ = self._batch_tensors(micro)
                with self._autocast():
                    logp, _ = token_logprobs(self.model, ids, attn, mask, self.config.temperature)
                for row, (t, _) in enumerate(micro):
                    out[id(t)] = logp[row, len(t.prompt_ids) : len(t.ids)].float().cpu()
        return out

    def _batch_tensors(
        self, micro: list[tuple[Trajectory, float]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids, attention, loss mask, sampler log-probs)`` of ``micro``."""
        width = max(len(t.ids) for t, _ in micro)
        pad = self.pad_id
        ids = torch.full((len(micro), width), pad, dtype=torch.long)
        attn = torch.zeros((len(micro), width), dtype=torch.long)
        mask = torch.zeros((len(micro), width), dtype=torch.long)
        old = torch.zeros((len(micro), width), dtype=torch.float32)
        for row, (t, _) in enumerate(micro):
            seq = t.ids
            p = len(t.prompt_ids)
            ids[row, : len(seq)] = torch.tensor(seq)
            attn[row, : len(seq)] = 1
            mask[row, p : len(seq)] = torch.tensor(t.loss_mask)
            old[row, p : len(seq)] = torch.tensor(t.old_logprobs)
        device = self.dist.device
        return ids.to(device), attn.to(device), mask.to(device), old.to(device)

    def _corrected_old(
        self,
        micro: list[tuple[Trajectory, float]],
        logp: torch.Tensor,
        sampler: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The ratio's old log-probs and the TIS weights; records the mismatch.

        Before the update's first optimiser step the trainer's current log-probs are its old
        ones; after it they come from :meth:`_score_old`.
        """
        trainer: torch.Tensor | None = None
        if not self._stepped:
            trainer = logp.detach().float()
        elif self.trainer_old:
            trainer = torch.zeros_like(sampler)
            for row, (t, _) in enumerate(micro):
                trainer[row, len(t.prompt_ids) : len(t.ids)] = self.trainer_old[id(t)]
        mode = self.correction
        if trainer is None:  # "none" after the first step: nothing new to measure
            return sampler, None
        m = mask.bool()
        diff = (trainer - sampler).abs()[m]
        n = float(diff.numel())
        weights = None
        if mode == "tis":
            weights = torch.exp(trainer - sampler).clamp(max=self.config.tis_cap)
            weights = torch.where(m, weights, torch.ones_like(weights))
        if n:
            self._mismatch[0] += float(diff.sum())
            self._mismatch[1] += n
            self._mismatch[2] = max(self._mismatch[2], float(diff.max()))
            if weights is not None:
                self._mismatch[3] += float(weights[m].sum())
        if mode == "none":
            return sampler, None
        return trainer, weights

    def _micro_batches(
        self, items: list[tuple[Trajectory, float]]
    ) -> list[list[tuple[Trajectory, float]]]:
        """Group by length so padded size stays under ``micro_batch_tokens``."""
        items = sorted(items, key=lambda x: len(x[0].ids))
        batches: list[list[tuple[Trajectory, float]]] = []
        current: list[tuple[Trajectory, float]] = []
        for item in items:
            width = len(item[0].ids)
            if current and width * (len(current) + 1) > self.config.micro_batch_tokens:
                batches.append(current)
                current = []
            current.append(item)
        if current:
            batches.append(current)
        return batches

    def _micro_loss(
        self, micro: list[tuple[Trajectory, float]], total_tokens: float, total_seqs: float
    ) -> dict[str, Any]:
        cfg = self.config
        ids, attn, mask, sampler = self._batch_tensors(micro)
        advantages = torch.tensor([a for _, a in micro], dtype=torch.float32).to(ids.device)
        with self._autocast():
            logp, entropy = token_logprobs(
                self.model,
                ids,
                attn,
                mask,
                cfg.temperature,
                with_entropy=True,
                entropy_grad=cfg.entropy_coef > 0,
            )
            ref = None
            if self.ref_model is not None:
                with torch.no_grad():
                    ref, _ = token_logprobs(self.ref_model, ids, attn, mask, cfg.temperature)
        old, is_weights = self._corrected_old(micro, logp, sampler, mask)
        out = grpo_loss(
            logp,
            old,
            advantages,
            mask,
            eps_low=cfg.eps_low,
            eps_high=cfg.eps_high,
            beta=cfg.beta,
            ref_logp=ref,
            aggregation=cfg.aggregation,
            total_tokens=total_tokens,
            total_seqs=total_seqs,
            norm_len=float(cfg.max_response_tokens),
            entropy=entropy if cfg.entropy_coef > 0 else None,
            entropy_coef=cfg.entropy_coef,
            kl_clamp=cfg.kl_clamp,
            is_weights=is_weights,
        )
        n = mask.sum().clamp(min=1)
        ent = float((entropy.detach() * mask).sum() / n) if entropy is not None else 0.0
        return {
            "loss": out.loss,
            "pg": out.pg_loss,
            "kl": out.kl,
            "clip": out.clip_fraction,
            "ratio": out.ratio_mean,
            "entropy": ent,
        }
