"""Group-normalised advantages: each rollout is scored against the rollouts of its question."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def group_advantages(
    rewards: Sequence[float] | torch.Tensor,
    group_ids: Sequence[int] | torch.Tensor,
    *,
    scale_std: bool = True,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Return ``(r - mean_group) / (std_group + eps)`` per rollout (or ``r - mean_group``).

    ``std_group`` is the unbiased sample standard deviation (as in ReSearch/verl and TRL); a
    group of one rollout, or one whose rewards are all equal, gets advantage 0.

    Args:
        rewards: One reward per rollout.
        group_ids: The group (question) of each rollout.
        scale_std: Divide by the group's standard deviation (GRPO); ``False`` keeps only the
            mean baseline (Dr. GRPO).
        eps: Added to the standard deviation.

    Returns:
        A float tensor of advantages, one per rollout.

    Examples:
        >>> group_advantages([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]).tolist()  # doctest: +ELLIPSIS
        [1.49999..., -0.49999..., -0.49999..., -0.49999...]
        >>> group_advantages([1.0, 0.0, 0.5, 0.5], [0, 0, 1, 1], scale_std=False).tolist()
        [0.5, -0.5, 0.0, 0.0]
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)
    g = torch.as_tensor(group_ids, dtype=torch.long)
    if r.shape != g.shape or r.dim() != 1:
        raise ValueError(f"rewards {tuple(r.shape)} and group_ids {tuple(g.shape)} must be 1-d")
    adv = torch.zeros_like(r)
    for gid in torch.unique(g):
        sel = g == gid
        rg = r[sel]
        centred = rg - rg.mean()
        if scale_std:
            std = rg.std(unbiased=True) if rg.numel() > 1 else torch.zeros((), dtype=r.dtype)
            centred = centred / (std + eps)
        adv[sel] = centred
    return adv.float()


def zero_variance_groups(
    rewards: Sequence[float], group_ids: Sequence[int]
) -> tuple[list[int], int]:
    """The ids of the groups whose rollouts all got the same reward, and how many groups there are.

    >>> zero_variance_groups([1, 1, 0, 1, 2, 2], [0, 0, 1, 1, 5, 5])
    ([0, 5], 3)
    """
    by_group: dict[int, set[float]] = {}
    for r, g in zip(rewards, group_ids):
        by_group.setdefault(int(g), set()).add(float(r))
    return [g for g, v in by_group.items() if len(v) == 1], len(by_group)


def zero_variance_share(rewards: Sequence[float], group_ids: Sequence[int]) -> float:
    """The share of groups whose rollouts all got the same reward (they carry no signal).

    >>> zero_variance_share([1, 1, 0, 1], [0, 0, 1, 1])
    0.5
    """
    flat, groups = zero_variance_groups(rewards, group_ids)
    return len(flat) / groups if groups else 0.0
