"""Generators: token ids in, sampled token ids and their log-probs out."""

from research_agents.generation.base import Generation, Generator, SamplingParams

__all__ = ["Generation", "Generator", "SamplingParams"]
