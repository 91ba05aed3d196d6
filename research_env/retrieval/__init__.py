"""Retrieval: the ``Retriever`` protocol and its backends."""

from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.bm25 import BM25Config, BM25Retriever
from research_env.retrieval.tokenize import tokenize

__all__ = ["BM25Config", "BM25Retriever", "RetrievalError", "Retriever", "tokenize"]
