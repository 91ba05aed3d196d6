"""Turn the env's ``dataset=`` and ``retriever=`` arguments into objects, once per process.

Many envs built in one process (vector envs, ``gym.make`` in a loop) share one loaded world and
one index instead of loading their own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from research_env.data.loaders import load_qa_jsonl
from research_env.data.types import QAExample
from research_env.retrieval.base import Retriever
from research_env.retrieval.bm25 import BACKENDS, FACTBOOK_BM25, BM25Retriever

if TYPE_CHECKING:
    from research_env.retrieval.remote import RemoteProtocol

DEFAULT_DATASET = "factbook"
SPLITS = ("train", "dev", "test")
FILE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
"""Endings of the QA files ``dataset=`` reads (FlashRAG-style records)."""


def is_dataset_file(dataset: object) -> bool:
    """Whether ``dataset`` names a QA file (one split of questions) rather than a dataset.

    >>> is_dataset_file("hotpot_dev.jsonl.gz"), is_dataset_file("factbook")
    (True, False)
    """
    return isinstance(dataset, str | Path) and str(dataset).endswith(FILE_SUFFIXES)


def resolve_dataset(dataset: str | Path | Sequence[QAExample], split: str) -> list[QAExample]:
    """Return the examples named by ``dataset`` and ``split``.

    Args:
        dataset: ``"factbook"`` (the embedded world); a registered benchmark name such as
            ``"hotpotqa"`` (:func:`research_env.data.datasets.load_dataset`, FlashRAG's split
            from the Hub cache); a FlashRAG-style QA file (``.jsonl``, ``.json``,
            ``.jsonl.gz``), which is one split: ``split`` must then be ``"train"`` (the
            default: the whole file), anything else is refused rather than ignored; or the
            examples themselves.
        split: ``"train"``, ``"dev"`` or ``"test"`` for the Factbook world.

    Raises:
        ValueError: On an unknown dataset name or split, or an empty dataset.
        FileNotFoundError: If a QA file does not exist.
    """
    if isinstance(dataset, str) and dataset == DEFAULT_DATASET:
        if split not in SPLITS:
            raise ValueError(f"expected split in {SPLITS}, got {split!r}")
        from research_env.data.factbook import load_factbook_world

        return load_factbook_world().split(split)
    if is_dataset_file(dataset):
        path = Path(dataset)  # type: ignore[arg-type]
        if split != "train":
            raise ValueError(
                f"dataset {str(path)!r} is one file, with no {split!r} split; pass the file of "
                f"that split as the dataset (for training: GRPOConfig.eval_dataset), or leave "
                "split at 'train' (the whole file)"
            )
        if not path.is_file():
            raise FileNotFoundError(f"dataset: no file at {path}")
        return load_qa_jsonl(path)
    if isinstance(dataset, str | Path):
        from research_env.data.datasets import DATASETS, load_dataset

        if isinstance(dataset, str) and dataset.lower() in {n.lower() for n in DATASETS}:
            return load_dataset(dataset, None, split)
        raise ValueError(
            f"expected dataset {DEFAULT_DATASET!r}, a registered name ({', '.join(DATASETS)}), "
            f"a QA file ({', '.join(FILE_SUFFIXES)}) or a list of QAExample, got {dataset!r}"
        )
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
    retriever = BM25Retriever(load_factbook_world().corpus, config)
    if backend == "bm25s" and numba_cache_cold():
        print(
            "research-env: the first search compiles the BM25 kernel with numba "
            "(once per machine, 10-30 s)",
            file=sys.stderr,
            flush=True,
        )
    return retriever


def numba_cache_cold() -> bool:
    """Whether numba has no compiled copy of the BM25 kernel cached yet (first use here)."""
    import importlib.util
    import os

    if importlib.util.find_spec("numba") is None:
        return False  # the numpy path compiles nothing
    spec = importlib.util.find_spec("research_env.retrieval._maxscore")
    if spec is None or spec.origin is None:
        return False
    module = Path(spec.origin)
    root = os.environ.get("NUMBA_CACHE_DIR")
    # numba caches beside the module, or under NUMBA_CACHE_DIR (mirroring its folder) when set
    place = (
        Path(root) / module.parent.relative_to(module.anchor)
        if root
        else module.parent / "__pycache__"
    )
    return not any(place.glob(f"{module.stem}.*.nbi"))


REMOTE_PROTOCOLS: dict[str, RemoteProtocol] = {
    "remote": "research",
    "remote+research": "research",
    "remote+searchr1": "searchr1",
}
"""``retriever=`` prefixes naming a retrieval server, and the protocol each speaks."""


@lru_cache(maxsize=32)
def remote_retriever(url: str, protocol: RemoteProtocol = "research") -> Retriever:
    """A :class:`RemoteRetriever` for ``url``, shared by every env of the process (one pool).

    Raises:
        ModuleNotFoundError: If httpx (the ``server`` extra) is not installed.
    """
    import importlib.util

    from research_env.retrieval.remote import RemoteRetriever

    if importlib.util.find_spec("httpx") is None:
        raise ModuleNotFoundError(
            "retriever='remote:...' needs httpx: pip install 'research-env[server]'", name="httpx"
        )

    return RemoteRetriever(url, protocol=protocol)


@lru_cache(maxsize=1)
def factbook_dense() -> Retriever:
    """MiniLM + flat faiss index over the embedded Factbook corpus (``retriever="dense"``).

    The first call embeds the 34,487 passages (minutes on a CPU, with a progress bar) and caches
    the embeddings and the index; later calls load them.
    """
    from research_env.data.factbook import load_factbook_world
    from research_env.retrieval.dense import DenseRetriever

    return DenseRetriever(load_factbook_world().corpus)


@lru_cache(maxsize=1)
def factbook_hybrid() -> Retriever:
    """BM25 and MiniLM over the Factbook corpus, fused by reciprocal rank (``"hybrid"``)."""
    from research_env.retrieval.fusion import HybridRetriever

    return HybridRetriever([factbook_bm25("bm25s"), factbook_dense()])


@lru_cache(maxsize=1)
def closed_corpus() -> Retriever:
    """Per-question BM25 over each example's ``metadata["context"]`` (``retriever="closed"``).

    One instance per process, so every env shares the per-question indexes it has built.
    """
    from research_env.retrieval.closed import ClosedCorpusRetriever

    return ClosedCorpusRetriever()


def default_retriever(
    dataset: str | Path | Sequence[QAExample], examples: Sequence[QAExample]
) -> str:
    """The retriever an env uses when none is given.

    ``"bm25"`` (the Factbook corpus) for the Factbook world and for examples passed as a list;
    ``"closed"`` when every example carries its own passages (``metadata["context"]``). A
    dataset file or benchmark name must otherwise name its retriever: searching the Factbook
    corpus for HotpotQA questions would train on noise.

    Raises:
        ValueError: Naming the dataset and the retrievers to choose from.
    """
    if isinstance(dataset, str) and dataset == DEFAULT_DATASET:
        return "bm25"
    if examples and all(e.metadata.get("context") for e in examples):
        return "closed"
    if not isinstance(dataset, str | Path):
        return "bm25"  # examples built in code: the Factbook corpus, as documented
    raise ValueError(
        f"dataset {str(dataset)!r} needs retriever=: the default BM25 index holds only the "
        "Factbook corpus; pass 'remote:http://127.0.0.1:8000' (a `searchqa serve` over your "
        "corpus), 'closed' (questions that carry metadata['context']) or a Retriever"
    )


def resolve_retriever(retriever: str | Retriever) -> Retriever:
    """Return the retriever named by ``retriever``.

    Args:
        retriever: A :class:`Retriever` instance, or ``"bm25"`` / ``"bm25:bm25s"`` /
            ``"bm25:rank_bm25"`` for BM25 over the embedded Factbook corpus;
            ``"remote:<url>"`` (ReSearch protocol) or ``"remote+searchr1:<url>"`` for a
            retrieval server such as ``searchqa serve``; ``"dense"`` (MiniLM, flat faiss index)
            or ``"hybrid"`` (BM25 + dense, reciprocal-rank fusion) over the Factbook corpus;
            ``"closed"``: each question searches only the passages its ``metadata["context"]``
            carries (HotpotQA distractor style; see :mod:`research_env.retrieval.closed`).

    Raises:
        ValueError: On an unknown name.
        TypeError: If an object is passed that does not implement the protocol.
    """
    if isinstance(retriever, str):
        prefix, _, url = retriever.partition(":")
        if prefix in REMOTE_PROTOCOLS:  # "remote:http://host:port", "remote+searchr1:http://..."
            return remote_retriever(url, REMOTE_PROTOCOLS[prefix])
        if retriever == "closed":
            return closed_corpus()
        if retriever in ("dense", "hybrid"):
            return factbook_dense() if retriever == "dense" else factbook_hybrid()
        kind, _, backend = retriever.partition(":")
        if kind != "bm25":
            raise ValueError(
                "expected retriever 'bm25', 'bm25:<backend>', 'dense', 'hybrid', 'closed', "
                f"'remote:<url>', 'remote+searchr1:<url>' or a Retriever, got {retriever!r}"
            )
        return factbook_bm25(backend or "bm25s")
    if not isinstance(retriever, Retriever):
        raise TypeError(
            f"expected a Retriever (search / search_batch methods), got {type(retriever).__name__}"
        )
    return retriever
