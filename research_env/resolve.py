"""Turn the env's ``dataset=`` and ``retriever=`` arguments into objects, once per process.

Many envs built in one process (vector envs, ``gym.make`` in a loop) share one loaded world and
one index instead of loading their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from research_env.data.loaders import load_qa_jsonl
from research_env.data.types import QAExample
from research_env.retrieval.base import Retriever
from research_env.retrieval.bm25 import BACKENDS, FACTBOOK_BM25, BM25Retriever

DEFAULT_DATASET = "factbook"
SPLITS = ("train", "dev", "test")


def resolve_dataset(dataset: str | Path | Sequence[QAExample], split: str) -> list[QAExample]:
    """Return the examples named by ``dataset`` and ``split``.

    Args:
        dataset: ``"factbook"`` (the embedded world), a path to a FlashRAG-style ``.jsonl`` file
            (``split`` is then ignored), or the examples themselves.
        split: ``"train"``, ``"dev"`` or ``"test"`` for the Factbook world.

    Raises:
        ValueError: On an unknown dataset name or split, or an empty dataset.
    """
    if isinstance(dataset, str) and dataset == DEFAULT_DATASET:
        if split not in SPLITS:
            raise ValueError(f"expected split in {SPLITS}, got {split!r}")
        from research_env.data.factbook import load_factbook_world

        return load_factbook_world().split(split)
    if isinstance(dataset, str | Path):
        path = Path(dataset)
        if path.suffix != ".jsonl":
            raise ValueError(
                f"expected dataset {DEFAULT_DATASET!r} or a path to a .jsonl file, got {dataset!r}"
            )
        return load_qa_jsonl(path)
    examples = list(dataset)
    if not examples or not all(isinstance(e, QAExample) for e in examples):
        raise ValueError("expected a non-empty sequence of QAExample as dataset")
    return examples


@lru_cache(maxsize=8)
def factbook_bm25(backend: str = "bm25s") -> BM25Retriever:
    """The BM25 index over the embedded Factbook corpus (built once, then loaded from cache)."""
    from research_env.data.factbook import load_factbook_world

    if backend not in BACKENDS:
        raise ValueError(f"expected backend in {BACKENDS}, got {backend!r}")
    config = replace(FACTBOOK_BM25, backend=backend)
    return BM25Retriever(load_factbook_world().corpus, config)


def resolve_retriever(retriever: str | Retriever) -> Retriever:
    """Return the retriever named by ``retriever``.

    Args:
        retriever: A :class:`Retriever` instance, or ``"bm25"`` / ``"bm25:bm25s"`` /
            ``"bm25:rank_bm25"`` for BM25 over the embedded Factbook corpus.

    Raises:
        ValueError: On an unknown name.
        TypeError: If an object is passed that does not implement the protocol.
    """
    if isinstance(retriever, str):
        kind, _, backend = retriever.partition(":")
        if kind != "bm25":
            raise ValueError(
                f"expected retriever 'bm25', 'bm25:<backend>' or a Retriever, got {retriever!r}"
            )
        return factbook_bm25(backend or "bm25s")
    if not isinstance(retriever, Retriever):
        raise TypeError(
            f"expected a Retriever (search / search_batch methods), got {type(retriever).__name__}"
        )
    return retriever
