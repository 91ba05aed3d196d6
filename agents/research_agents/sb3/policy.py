"""A candidate-scoring actor-critic for SB3: one shared scorer applied to every slot.

The choice env's observation holds K candidates in shuffled slots. SB3's default ``MlpPolicy``
works on it, but it has to learn the same "how good is this candidate" function K times over,
once per slot. :class:`CandidateScoringPolicy` scores each slot with one shared network (the
DRRN idea of He et al., 2016, for text games with choice-based actions) and uses the K scores as
the logits of ``Discrete(K)``; the critic reads a pooled summary of the slots. It is a plain
``ActorCriticPolicy`` subclass, so ``PPO(CandidateScoringPolicy, env)`` is all it takes.

Per slot ``k`` the scorer reads ``[P c_k, P q, P x, P c_k * P q, P c_k * P x, f_k, g]``: ``P`` a
shared linear projection of the embeddings (candidate ``c_k``, question ``q``, context ``x``),
``f_k`` the candidate's features and ``g`` the global features.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from research_agents.sb3.features import ObsLayout

__all__ = ["CandidateScorer", "CandidateScoringPolicy"]


class CandidateScorer(nn.Module):
    """SB3 ``mlp_extractor``: the K slot scores as ``latent_pi``, a pooled state as ``latent_vf``.

    Args:
        layout: The observation layout.
        proj_dim: Size of the shared embedding projection.
        hidden: Width of the per-slot network and of the critic's latent.
    """

    def __init__(self, layout: ObsLayout, proj_dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.layout = layout
        self.proj = nn.Linear(layout.embed_dim, proj_dim)
        width = 5 * proj_dim + layout.feature_size + layout.global_size
        self.trunk = nn.Sequential(
            nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.score = nn.Linear(hidden, 1)
        self.critic = nn.Sequential(
            nn.Linear(2 * hidden + 2 * proj_dim + layout.global_size, hidden), nn.Tanh()
        )
        self.latent_dim_pi = layout.num_candidates
        self.latent_dim_vf = hidden

    def _slots(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-slot hidden states ``[B, K, hidden]`` and the head ``[B, 2 proj + G]``."""
        lay = self.layout
        d, g = lay.embed_dim, lay.global_size
        q = self.proj(obs[:, :d])
        x = self.proj(obs[:, d : 2 * d])
        glob = obs[:, 2 * d : lay.head_size]
        slots = obs[:, lay.head_size :].reshape(-1, lay.num_candidates, lay.slot_size)
        c = self.proj(slots[..., :d])
        feats = slots[..., d:]
        k = lay.num_candidates
        qk, xk = q.unsqueeze(1).expand(-1, k, -1), x.unsqueeze(1).expand(-1, k, -1)
        gk = glob.unsqueeze(1).expand(-1, k, g)
        h = self.trunk(torch.cat([c, qk, xk, c * qk, c * xk, feats, gk], dim=-1))
        return h, torch.cat([q, x, glob], dim=-1)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The K logits ``[B, K]``."""
        h, _ = self._slots(features)
        out: torch.Tensor = self.score(h).squeeze(-1)
        return out

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The critic's latent ``[B, hidden]``."""
        h, head = self._slots(features)
        return self._critic(h, head)

    def _critic(self, h: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([h.mean(dim=1), h.max(dim=1).values, head], dim=-1)
        out: torch.Tensor = self.critic(pooled)
        return out

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent_pi, latent_vf)``, sharing the per-slot pass."""
        h, head = self._slots(features)
        return self.score(h).squeeze(-1), self._critic(h, head)


class CandidateScoringPolicy(ActorCriticPolicy):
    """``ActorCriticPolicy`` whose logits are :class:`CandidateScorer`'s per-slot scores.

    The observation layout is inferred from the observation size and ``Discrete(K)``.

    Args:
        observation_space: The choice env's ``Box``.
        action_space: Its ``Discrete(K)``.
        lr_schedule: SB3's learning-rate schedule.
        proj_dim: Size of the shared embedding projection.
        hidden: Width of the scorer and critic.
        **kwargs: Passed to ``ActorCriticPolicy`` (``ortho_init``, ``optimizer_kwargs``...).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Any,
        proj_dim: int = 32,
        hidden: int = 64,
        **kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"CandidateScoringPolicy needs Discrete actions, got {action_space}")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"CandidateScoringPolicy needs a 1-D Box, got {observation_space}")
        self.layout = ObsLayout.infer(observation_space.shape[0], int(action_space.n))
        self.proj_dim, self.hidden = proj_dim, hidden
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = CandidateScorer(self.layout, self.proj_dim, self.hidden)  # type: ignore[assignment]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the scorer's outputs already are the logits
        scorer = self.mlp_extractor
        assert isinstance(scorer, CandidateScorer)
        if self.ortho_init:  # near-uniform first policy, as SB3 does for its action_net
            nn.init.orthogonal_(scorer.score.weight, gain=0.01)
            nn.init.zeros_(scorer.score.bias)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(proj_dim=self.proj_dim, hidden=self.hidden)
        return data
