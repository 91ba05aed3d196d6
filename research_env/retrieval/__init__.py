"""Retrieval: the ``Retriever`` protocol and its backends."""

from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.bm25 import BM25Config, BM25Retriever
from research_env.retrieval.closed import (
    ClosedCorpusConfig,
    ClosedCorpusRetriever,
    PerExampleRetriever,
)
from research_env.retrieval.dense import DenseConfig, DenseRetriever, EncoderConfig
from research_env.retrieval.fusion import HybridRetriever
from research_env.retrieval.remote import RemoteConfig, RemoteRetriever
from research_env.retrieval.result_cache import CachedRetriever
from research_env.retrieval.tokenize import tokenize

__all__ = [
    "BM25Config",
    "BM25Retriever",
    "CachedRetriever",
    "ClosedCorpusConfig",
    "ClosedCorpusRetriever",
    "DenseConfig",
    "DenseRetriever",
    "EncoderConfig",
    "HybridRetriever",
    "PerExampleRetriever",
    "RemoteConfig",
    "RemoteRetriever",
    "RetrievalError",
    "Retriever",
    "tokenize",
]
