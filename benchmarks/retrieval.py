"""BM25 at scale: the default backend against the rank_bm25 reference, side by side.

A synthetic Zipfian corpus (deterministic from ``--seed``): a vocabulary of 50,000 words drawn
with probability ∝ 1 / rank^1.1. As in English text, the most frequent words are function
words: ranks 1–33 are the 33 stop words the tokenizer drops (about half of all word
occurrences, as "the", "of", "and"… are in English text); ranks 34–50,000 are pseudo-words
(consonant-vowel syllables). Passages have 50–150 words (100 on average; about 50 indexed
tokens), empty titles. A query is 3–6 content words picked, in order, from a random passage.
``--no-stopwords`` makes every rank a pseudo-word instead: the ten most frequent terms then
occur in most passages, a harder case for pruning and one where Okapi's and Lucene's idf
disagree (see below).

For each corpus size both backends index the same passages through the public
``BM25Retriever`` and answer the same queries one at a time with ``search(q, 5)``: tokenisation
and building the ``Passage`` results are inside the timed region for both.

Printed per size: build time, index memory, persisted-index load time, ms/query and queries/s,
the speed-up, and how far the two backends' top-5 agree. rank_bm25 takes 0.02–0.7 s per query,
so it is timed on the first ``--ref-queries`` queries only (fewer when ``--ref-seconds`` runs
out); the speed-up compares both backends on exactly those queries. The two backends differ in
one formula: bm25s uses Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5)), rank_bm25 Okapi's,
log((N - df + 0.5) / (df + 0.5)), floored at 0.25 × the mean idf for terms in over half of
the passages. The overlap is also reported with rank_bm25's idf replaced by Lucene's, which
separates the formula from the implementation.

Index memory, method: for ``bm25s`` the bytes of the index arrays (scores, document numbers,
term pointers, term maxima: what is memory-mapped on load) plus a deep ``sys.getsizeof`` of the
vocabulary dict; for rank_bm25 a deep ``sys.getsizeof`` of its per-document term-frequency dicts,
document lengths and idf dict (strings and ints are counted once each).

The numba kernel is compiled (or loaded from numba's on-disk cache) once per process: the
warm-up query that pays for it runs before any timed region, and its time is printed.

Run: ``.venv/bin/python benchmarks/retrieval.py`` (sizes 10k, 100k, 300k; 10–15 minutes on 2
cores), ``--quick`` for a one-minute check, ``--million`` to also build and load a 1M index.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from research_env.data.types import Passage
from research_env.retrieval.bm25 import BM25Config, BM25Retriever
from research_env.retrieval.tokenize import STOPWORDS, tokenize

VOCAB = 50_000
ZIPF = 1.1
MEAN_LEN = 100
K = 5

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwxyz" for v in "aeiou"]


def pseudo_words(n: int) -> list[str]:
    """``n`` distinct lowercase pseudo-words (base-100 numbers spelled in syllables)."""
    words: list[str] = []
    i = 0
    while len(words) < n:
        x, word = i, ""
        while True:
            word = _SYLLABLES[x % 100] + word
            x //= 100
            if x == 0:
                break
        i += 1
        if word not in STOPWORDS:
            words.append(word)
    return words


def vocabulary(stopwords: bool) -> list[str]:
    """The words by decreasing frequency: the stop words first (when asked), then pseudo-words."""
    head = sorted(STOPWORDS) if stopwords else []
    return head + pseudo_words(VOCAB - len(head))


def zipf_corpus(n: int, seed: int, stopwords: bool = True) -> list[Passage]:
    """``n`` passages of Zipf-distributed words; the same ``seed`` gives the same corpus."""
    rng = np.random.default_rng(seed)
    vocab = np.array(vocabulary(stopwords), dtype=object)
    p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
    cdf = np.cumsum(p / p.sum())
    lengths = rng.integers(MEAN_LEN // 2, MEAN_LEN * 3 // 2 + 1, size=n)
    corpus: list[Passage] = []
    for start in range(0, n, 100_000):  # in chunks: 1M passages are 100M word draws
        chunk = lengths[start : start + 100_000]
        ids = np.searchsorted(cdf, rng.random(int(chunk.sum())), side="right")
        ids = np.minimum(ids, VOCAB - 1)
        words = vocab[ids].tolist()
        offset = 0
        for i, length in enumerate(chunk.tolist()):
            text = " ".join(words[offset : offset + length])
            corpus.append(Passage(f"p{start + i}", "", text))
            offset += length
    return corpus


def sample_queries(corpus: Sequence[Passage], n: int, seed: int) -> list[str]:
    """``n`` queries of 3–6 content words taken in order from random passages."""
    rng = np.random.default_rng(seed + 1)
    queries: list[str] = []
    while len(queries) < n:
        words = [
            w for w in corpus[int(rng.integers(len(corpus)))].text.split() if w not in STOPWORDS
        ]
        m = int(rng.integers(3, 7))
        if len(words) < m:
            continue
        picked = np.sort(rng.choice(len(words), size=m, replace=False))
        queries.append(" ".join(words[i] for i in picked))
    return queries


def deep_size(obj: Any) -> int:
    """Bytes of ``obj`` and of the containers in it (strings and ints counted once each)."""
    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, np.ndarray):
            total += o.nbytes
            continue
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple):
            stack.extend(o)
    return total


def index_mib(retriever: BM25Retriever) -> float:
    """Index memory in MiB, by the method in the module docstring."""
    engine: Any = retriever._engine
    if retriever.config.backend == "bm25s":
        arrays = engine.data, engine.indices, engine.indptr, engine.term_max
        size = sum(a.nbytes for a in arrays) + deep_size(engine.model.vocab_dict)
    else:
        model = engine.model
        size = deep_size(model.doc_freqs) + deep_size(model.doc_len) + deep_size(model.idf)
    return size / 2**20


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def per_query_seconds(
    retriever: BM25Retriever, queries: Sequence[str], budget: float = float("inf")
) -> tuple[float, int]:
    """Mean seconds per ``search(q, 5)``, one query at a time, and how many ran in ``budget``."""
    start = time.perf_counter()
    n = 0
    for q in queries:
        retriever.search(q, K)
        n += 1
        if time.perf_counter() - start > budget and n >= 10:
            break
    return (time.perf_counter() - start) / n, n


def overlap(a: list[Passage], b: list[Passage]) -> tuple[float, bool]:
    ids_a, ids_b = {p.id for p in a}, {p.id for p in b}
    return len(ids_a & ids_b) / K, ids_a == ids_b


def run_size(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"passages": n}
    t = time.perf_counter()
    corpus = zipf_corpus(n, args.seed, stopwords=not args.no_stopwords)
    queries = sample_queries(corpus, args.queries, args.seed)
    row["generate_s"] = time.perf_counter() - t
    row["words_per_passage"] = statistics.mean(len(p.text.split()) for p in corpus[:1000])
    row["tokens_per_passage"] = statistics.mean(len(tokenize(p.text)) for p in corpus[:1000])

    # --- default backend: build (tokenise + index + save), then load the persisted index.
    index_dir = workdir / f"bm25s-{n}"
    t = time.perf_counter()
    built = BM25Retriever(corpus, BM25Config(), index_dir=index_dir)
    row["bm25s_build_s"] = built.build_seconds
    row["bm25s_build_and_save_s"] = time.perf_counter() - t
    row["bm25s_index_mib"] = index_mib(built)
    row["bm25s_disk_mib"] = dir_mib(index_dir)
    del built
    gc.collect()
    t = time.perf_counter()
    fast = BM25Retriever(corpus, BM25Config(), index_dir=index_dir)
    row["bm25s_open_s"] = time.perf_counter() - t  # incl. hashing the corpus for the fingerprint
    row["bm25s_load_s"] = fast.load_seconds  # memory-mapping the index files
    row["accelerator"] = fast.accelerator
    row["warmup_s"] = fast.warmup()  # JIT / numba-cache load: outside every timed region

    # One query at a time, all queries; best of 3 passes (the machine is shared).
    passes = [per_query_seconds(fast, queries)[0] for _ in range(3)]
    row["bm25s_ms"] = 1000 * min(passes)
    t = time.perf_counter()
    fast_results = fast.search_batch(queries, K)
    row["bm25s_batch_ms"] = 1000 * (time.perf_counter() - t) / len(queries)
    threaded = BM25Retriever(corpus, BM25Config(n_threads=2), index_dir=index_dir)
    threaded.warmup()
    threaded.search_batch(queries[:4], K)  # the parallel kernel's own warm-up
    t = time.perf_counter()
    threaded.search_batch(queries, K)
    row["bm25s_batch2_ms"] = 1000 * (time.perf_counter() - t) / len(queries)

    # The numpy accelerator answers the same queries: its results must be identical.
    numpy_path = BM25Retriever(corpus, BM25Config(accelerator="numpy"), index_dir=index_dir)
    check = queries[: min(len(queries), 200)]
    row["numba_equals_numpy"] = numpy_path.search_batch(check, K) == fast_results[: len(check)]
    row["numpy_ms"] = 1000 * per_query_seconds(numpy_path, check)[0]

    # bm25s's own retrieve with its numba backend (exhaustive scoring), for reference.
    if not args.skip_library:
        import bm25s

        lib = bm25s.BM25.load(str(index_dir), mmap=True, backend="numba")
        vocab = lib.vocab_dict
        ids = [[vocab[t] for t in tokenize(q) if t in vocab] or [0] for q in queries]
        t = time.perf_counter()
        lib.retrieve([ids[0]], k=K, show_progress=False, n_threads=1)
        row["library_warmup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for q_ids in ids:
            lib.retrieve([q_ids], k=K, show_progress=False, n_threads=1)
        row["library_ms"] = 1000 * (time.perf_counter() - t) / len(ids)
        del lib

    # --- rank_bm25 reference, on the first queries only.
    if not args.skip_reference:
        gc.collect()
        ref = BM25Retriever(corpus, BM25Config(backend="rank_bm25"), persist=False)
        row["ref_build_s"] = ref.build_seconds
        row["ref_index_mib"] = index_mib(ref)
        subset = queries[: args.ref_queries]
        ref_s, n_ref = per_query_seconds(ref, subset, args.ref_seconds)
        subset = subset[:n_ref]
        row["ref_queries"] = n_ref
        row["ref_ms"] = 1000 * ref_s
        fast_subset = [per_query_seconds(fast, subset)[0] for _ in range(3)]
        row["bm25s_ms_on_ref_queries"] = 1000 * min(fast_subset)
        row["speedup"] = row["ref_ms"] / row["bm25s_ms_on_ref_queries"]
        both = zip(fast.search_batch(subset, K), ref.search_batch(subset, K))
        pairs = [overlap(a, b) for a, b in both]
        row["top5_overlap"] = statistics.mean(o for o, _ in pairs)
        row["top5_identical"] = statistics.mean(same for _, same in pairs)
        # The same rank_bm25 index, with Lucene's idf instead of Okapi's (floored).
        model = ref._engine.model  # type: ignore[attr-defined]
        df: dict[str, int] = {}
        for doc in model.doc_freqs:
            for word in doc:
                df[word] = df.get(word, 0) + 1
        n_docs = model.corpus_size
        model.idf = {w: math.log(1 + (n_docs - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        both = zip(fast.search_batch(subset, K), ref.search_batch(subset, K))
        pairs = [overlap(a, b) for a, b in both]
        row["top5_overlap_lucene_idf"] = statistics.mean(o for o, _ in pairs)
        row["top5_identical_lucene_idf"] = statistics.mean(same for _, same in pairs)
        del ref, model
    del fast, threaded, numpy_path, corpus
    gc.collect()
    return row


def print_tables(rows: list[dict[str, Any]]) -> None:
    print("\n| passages | backend | build (s) | index (MiB) | load (s) | ms/query | queries/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['passages']:,} | bm25s + numba MaxScore (default) | {r['bm25s_build_s']:.1f} | "
            f"{r['bm25s_index_mib']:.0f} | {r['bm25s_load_s']:.3f} | {r['bm25s_ms']:.4f} | "
            f"{1000 / r['bm25s_ms']:,.0f} |"
        )
        if "ref_ms" in r:
            print(
                f"| {r['passages']:,} | rank_bm25 | {r['ref_build_s']:.1f} | "
                f"{r['ref_index_mib']:.0f} | – | {r['ref_ms']:.1f} (first {r['ref_queries']}) | "
                f"{1000 / r['ref_ms']:,.1f} |"
            )
    if any("speedup" in r for r in rows):
        print(
            "\n| passages | rank_bm25 ms/q | default ms/q (same queries) | speed-up "
            "| top-5 overlap | identical top-5 sets | overlap, both with Lucene idf |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            if "speedup" in r:
                print(
                    f"| {r['passages']:,} | {r['ref_ms']:.1f} | {r['bm25s_ms_on_ref_queries']:.4f} "
                    f"| **{r['speedup']:,.0f}×** | {r['top5_overlap']:.3f} | "
                    f"{r['top5_identical']:.2f} | {r['top5_overlap_lucene_idf']:.3f} |"
                )
    print(
        "\n| passages | default, one at a time | batched, 1 thread | batched, 2 threads "
        "| numpy accelerator | bm25s retrieve (numba, exhaustive) | numba == numpy |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lib = f"{r['library_ms']:.4f}" if "library_ms" in r else "–"
        print(
            f"| {r['passages']:,} | {r['bm25s_ms']:.4f} | {r['bm25s_batch_ms']:.4f} | "
            f"{r['bm25s_batch2_ms']:.4f} | {r['numpy_ms']:.3f} | {lib} | "
            f"{r['numba_equals_numpy']} |"
        )
    print(
        "\n| passages | build + save (s) | index on disk (MiB) | open: load + corpus hash (s) "
        "| warm-up query (s) |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['passages']:,} | {r['bm25s_build_and_save_s']:.1f} | {r['bm25s_disk_mib']:.0f} "
            f"| {r['bm25s_open_s']:.2f} | {r['warmup_s']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--queries", type=int, default=1000, help="queries per size")
    parser.add_argument(
        "--ref-queries", type=int, default=100, help="queries timed on rank_bm25 (at most)"
    )
    parser.add_argument(
        "--ref-seconds", type=float, default=30.0, help="time budget of rank_bm25 per size"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="sizes 2k and 10k, 200 queries")
    parser.add_argument("--million", action="store_true", help="also 1M passages (no rank_bm25)")
    parser.add_argument(
        "--no-stopwords", action="store_true", help="every word a pseudo-word (harder case)"
    )
    parser.add_argument("--skip-reference", action="store_true", help="do not run rank_bm25")
    parser.add_argument(
        "--skip-library", action="store_true", help="do not time bm25s's own numba retrieve"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--keep", type=Path, help="build the indices here and keep them")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.queries, args.ref_queries = [2_000, 10_000], 200, 50

    import bm25s
    import numba

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}, "
        f"bm25s {bm25s.__version__}, numba {numba.__version__}"
    )
    print(f"# {' '.join(sys.argv)}")
    corpus_kind = "pseudo-words only" if args.no_stopwords else "ranks 1-33 are stop words"
    print(f"# corpus: Zipf {ZIPF}, {VOCAB:,} words ({corpus_kind}), seed {args.seed}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    rows = []
    try:
        for n in args.sizes:
            print(f"... {n:,} passages", flush=True)
            rows.append(run_size(n, args, workdir))
            print(json.dumps(rows[-1]), flush=True)
        if args.million:
            print("... 1,000,000 passages (default backend only)", flush=True)
            one_m = replace_args(args, skip_reference=True, skip_library=True)
            rows.append(run_size(1_000_000, one_m, workdir))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print_tables(rows)
    print(f"\n# load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def replace_args(args: argparse.Namespace, **changes: Any) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


if __name__ == "__main__":
    main()
