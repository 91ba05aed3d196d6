"""Caches fed by client text stay bounded (issue 15): tokenizer folding, answer normalisation,
the in-memory result cache."""

from __future__ import annotations

import random
import sys

from research_env import rewards
from research_env.data.types import Passage
from research_env.retrieval import BM25Retriever, CachedRetriever
from research_env.retrieval.tokenize import FOLD_CACHE_WORDS, _fold_cached, tokenize


def test_the_fold_cache_keeps_only_short_non_ascii_words():
    rng = random.Random(0)
    _fold_cached.cache_clear()
    long_words = [rng.randbytes(500).hex() + "é" for _ in range(2000)]  # 1,001 chars each
    ascii_words = [rng.randbytes(8).hex() for _ in range(2000)]
    tokens = tokenize(" ".join(long_words + ascii_words))
    assert tokens[0] == long_words[0][:-1] + "e" and tokens[-1] == ascii_words[-1]
    assert _fold_cached.cache_info().currsize == 0  # neither kind was cached
    assert tokenize("Perú Perú Côte") == ["peru", "peru", "cote"]
    assert _fold_cached.cache_info().currsize == 2  # short accented words are
    many = [f"é{i}" for i in range(FOLD_CACHE_WORDS + 5000)]
    tokenize(" ".join(many))
    assert _fold_cached.cache_info().currsize == FOLD_CACHE_WORDS


def test_answer_normalisation_does_not_remember_every_code_point():
    text = "".join(chr(c) for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000)
    assert rewards.normalize_answer("Bogotá, D.C.") == "bogotá dc"
    rewards.normalize_answer(text)
    assert len(rewards._DELETE) <= rewards._DELETE_CACHE_MAX < 0x110000
    assert rewards.normalize_answer("¿Qué?  «Sí»") == "qué sí"  # still right past the bound
    assert rewards.normalize_answer("\U0010fffd!") == "\U0010fffd"


def test_the_in_memory_result_cache_is_bounded_by_bytes():
    corpus = [Passage("a", "Peru", "capital Lima"), Passage("b", "Chile", "capital Santiago")]
    cached = CachedRetriever(BM25Retriever(corpus, persist=False), max_bytes=200_000)
    for i in range(200):  # 200 distinct 4,000-character queries: ~800 KB of keys
        cached.search(f"capital {i} " + "x" * 4000, 2)
    held = sum(sys.getsizeof(key[2]) for key in cached._entries)
    assert len(cached) < 60 and held < 250_000, (len(cached), held)
    assert [p.id for p in cached.search("capital Lima", 1)] == ["a"]
