"""Stable-Baselines3 route: SearchQA-v0 as a K-way choice problem SB3 can learn.

SB3's algorithms cannot emit text. :class:`SearchQAChoiceEnv` wraps a real ``SearchQAEnv``: each
turn a proposer offers K candidate actions (queries, answer spans from retrieved passages), the
observation is a fixed-size vector of MiniLM embeddings and features, the action is
``Discrete(K)``, and the chosen candidate reaches the inner env as text, whose reward comes back
unchanged. :class:`~research_agents.sb3.policy.CandidateScoringPolicy` is an SB3 policy that
scores every slot with one shared network (``from research_agents.sb3.policy import ...``; it
imports torch and SB3).

Example:
    >>> from stable_baselines3 import PPO  # doctest: +SKIP
    >>> env = SearchQAChoiceEnv(ChoiceEnvConfig(split="train"))  # doctest: +SKIP
    >>> PPO(CandidateScoringPolicy, env).learn(20_000)  # doctest: +SKIP
"""

from research_agents.sb3.choice_env import ChoiceEnvConfig, SearchQAChoiceEnv, render_action
from research_agents.sb3.embed import CachedEmbedder, TextEmbedder
from research_agents.sb3.features import CANDIDATE_FEATURES, GLOBAL_FEATURES, ObsLayout
from research_agents.sb3.proposers import (
    Candidate,
    HeuristicProposer,
    LLMProposer,
    ProposalState,
    Proposer,
)

__all__ = [
    "CANDIDATE_FEATURES",
    "GLOBAL_FEATURES",
    "CachedEmbedder",
    "Candidate",
    "ChoiceEnvConfig",
    "HeuristicProposer",
    "LLMProposer",
    "ObsLayout",
    "ProposalState",
    "Proposer",
    "SearchQAChoiceEnv",
    "TextEmbedder",
    "render_action",
]
