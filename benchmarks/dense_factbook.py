"""Dense (MiniLM) and hybrid (BM25 + MiniLM, RRF) retrieval on the Factbook world vs BM25.

Measures answer recall@5 with the question text as the query, per question type, on the dev
split (``--split``; ``--split all`` for every question), the cost of embedding the corpus, and the
search latency of each index type (flat / HNSW / IVF) and of the hybrid.

Run: ``.venv/bin/python benchmarks/dense_factbook.py`` — the first run embeds the 34,487 passages
(minutes on a CPU) into the normal cache, where ``gym.make(..., retriever="dense")`` finds them;
later runs load them. ``--fresh`` uses a temporary cache so the embedding is timed again.
``--passages N`` keeps only the first N passages: a quick smoke test whose recall is not
comparable with the full corpus.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="use a temporary cache (re-embed)")
    parser.add_argument("--split", default="dev", help="train, dev, test or all")
    parser.add_argument("--passages", type=int, default=None, help="first N passages only")
    parser.add_argument("--timed", type=int, default=50, help="queries timed one at a time")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.fresh:
        os.environ["RESEARCH_ENV_CACHE"] = tempfile.mkdtemp(prefix="research-env-bench-")

    from research_env.data.factbook import load_factbook_world
    from research_env.retrieval.bm25 import FACTBOOK_BM25, BM25Retriever
    from research_env.retrieval.dense import DenseConfig, DenseRetriever
    from research_env.retrieval.fusion import HybridRetriever
    from research_env.rewards import answer_in_passages

    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)

    world = load_factbook_world()
    corpus = world.corpus[: args.passages] if args.passages else world.corpus
    examples = world.examples if args.split == "all" else world.split(args.split)
    print(f"Factbook: {len(corpus)} passages; {len(examples)} questions ({args.split})")

    bm25 = BM25Retriever(corpus, FACTBOOK_BM25)
    t = time.perf_counter()
    flat = DenseRetriever(corpus, DenseConfig())
    wall = time.perf_counter() - t
    if flat.embedded_passages:
        print(
            f"embedding (all-MiniLM-L6-v2, batch {flat.config.encoder.batch_size}): "
            f"{flat.embedded_passages} passages in {flat.embed_seconds:.1f} s = "
            f"{flat.embedded_passages / flat.embed_seconds:.1f} passages/s"
        )
    else:
        print(f"embeddings and flat index loaded from {flat.index_dir} in {wall:.1f} s")
    retrievers: dict[str, object] = {"bm25": bm25, "dense flat": flat}
    build: dict[str, str] = {"bm25": "-"}
    if flat.build_seconds:  # the index alone; embedding is reported above
        build["dense flat"] = f"{flat.build_seconds - flat.embed_seconds:.2f}"
    else:
        build["dense flat"] = "(cached)"
    for name, config in [
        ("dense hnsw", DenseConfig(index_type="hnsw")),
        ("dense ivf", DenseConfig(index_type="ivf")),
    ]:
        r = DenseRetriever(corpus, config)
        retrievers[name] = r
        build[name] = f"{r.build_seconds:.2f}" if r.build_seconds else "(cached)"
    retrievers["hybrid bm25+flat"] = HybridRetriever([bm25, flat])
    build["hybrid bm25+flat"] = "-"

    by_type: dict[str, list] = defaultdict(list)
    for e in examples:
        by_type[e.metadata["type"]].append(e)
    types = sorted(by_type, key=lambda t: (by_type[t][0].metadata["hops"], t))
    queries = [e.question for e in examples]

    recall: dict[str, dict[str, float]] = {}
    speed: dict[str, tuple[float, float]] = {}
    for name, retriever in retrievers.items():
        retriever.search_batch(queries[:8], 5)  # type: ignore[attr-defined]  # warm-up
        times = []
        for q in queries[: args.timed]:
            t = time.perf_counter()
            retriever.search(q, 5)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        results = retriever.search_batch(queries, 5)  # type: ignore[attr-defined]
        batched = (time.perf_counter() - t) / len(queries)
        found = [answer_in_passages(p, e.golden_answers) for e, p in zip(examples, results)]
        per_type: dict[str, list[bool]] = defaultdict(list)
        for e, f in zip(examples, found):
            per_type[e.metadata["type"]].append(f)
        recall[name] = {t: sum(v) / len(v) for t, v in per_type.items()}
        recall[name]["all"] = sum(found) / len(found)
        speed[name] = (1000 * statistics.median(times), 1000 * batched)

    threads = f"{args.threads} thread(s)" if args.threads else "default threads"
    print(f"\nAnswer recall@5, question text as the query ({args.split} split, {threads}):\n")
    header = " | ".join(f"{t} ({len(by_type[t])})" for t in types)
    print(f"| retriever | {header} | all ({len(examples)}) |")
    print("|---|" + "---|" * (len(types) + 1))
    for name in retrievers:
        cells = " | ".join(f"{recall[name][t]:.3f}" for t in types)
        print(f"| {name} | {cells} | {recall[name]['all']:.3f} |")

    print("\n| retriever | index build (s) | latency (ms/query) | batched (ms/query) |")
    print("|---|---|---|---|")
    for name in retrievers:
        single, batched = speed[name]
        print(f"| {name} | {build[name]} | {single:.2f} (median of {args.timed}) | {batched:.2f} |")


if __name__ == "__main__":
    main()
