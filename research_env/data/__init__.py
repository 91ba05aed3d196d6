"""Datasets and corpora: core types and the embedded Factbook world."""

from research_env.data.corpus import JsonlCorpus, iter_corpus_jsonl, load_corpus
from research_env.data.types import Passage, QAExample

__all__ = ["JsonlCorpus", "Passage", "QAExample", "iter_corpus_jsonl", "load_corpus"]
