"""Datasets and corpora: core types and the embedded Factbook world."""

from research_env.data.types import Passage, QAExample

__all__ = ["Passage", "QAExample"]
