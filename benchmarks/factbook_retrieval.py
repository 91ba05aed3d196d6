"""BM25 on the embedded Factbook world: build/load time, latency per backend, answer recall@5.

Run: ``.venv/bin/python benchmarks/factbook_retrieval.py`` (uses a fresh temporary cache so the
build is measured; pass ``--cache`` to use the normal cache instead).
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
    parser.add_argument("--cache", action="store_true", help="use the normal cache directory")
    parser.add_argument("--queries", type=int, default=200, help="questions timed per backend")
    parser.add_argument(
        "--sweep", action="store_true", help="also sweep title_weight x b (single-hop recall@5)"
    )
    args = parser.parse_args()
    if not args.cache:
        os.environ["RESEARCH_ENV_CACHE"] = tempfile.mkdtemp(prefix="research-env-bench-")

    from dataclasses import replace

    from research_env.data.factbook import load_factbook_world
    from research_env.retrieval.bm25 import FACTBOOK_BM25, BM25Retriever
    from research_env.rewards import answer_in_passages

    t0 = time.perf_counter()
    world = load_factbook_world()
    t_world = time.perf_counter() - t0
    print(
        f"Factbook world: {len(world.corpus)} passages, {len(world.examples)} questions "
        f"(first load incl. build: {t_world:.2f} s)"
    )

    examples = world.examples
    sample = examples[:: max(1, len(examples) // args.queries)][: args.queries]
    queries = [e.question for e in sample]
    results = {}
    print(
        "\n| backend | index build (s) | index load (s) | latency (ms/query) | batched (ms/query) |"
    )
    print("|---|---|---|---|---|")
    for backend in ("bm25s", "rank_bm25"):
        config = replace(FACTBOOK_BM25, backend=backend)  # type: ignore[arg-type]
        built = BM25Retriever(world.corpus, config)
        loaded = BM25Retriever(world.corpus, config)
        n = len(queries) if backend == "bm25s" else min(len(queries), 50)
        times = []
        for q in queries[:n]:
            t = time.perf_counter()
            loaded.search(q, 5)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        results[backend] = loaded.search_batch(queries[:n], 5)
        batched = (time.perf_counter() - t) / n
        print(
            f"| {backend} | {built.build_seconds:.2f} | {loaded.load_seconds:.3f} | "
            f"{1000 * statistics.median(times):.2f} (median of {n}) | {1000 * batched:.2f} |"
        )

    n = len(results["rank_bm25"])
    same = sum(
        {p.id for p in a} == {p.id for p in b}
        for a, b in zip(results["bm25s"][:n], results["rank_bm25"])
    )
    overlap = statistics.mean(
        len({p.id for p in a} & {p.id for p in b}) / 5
        for a, b in zip(results["bm25s"][:n], results["rank_bm25"])
    )
    print(
        f"\nbackend agreement on {n} questions: identical top-5 sets {same / n:.2f}, "
        f"mean top-5 overlap {overlap:.3f}"
    )

    by_type = defaultdict(list)
    for e in examples:
        by_type[e.metadata["type"]].append(e)

    def recall_at_5(retriever: BM25Retriever, exs: list) -> float:
        hits = retriever.search_batch([e.question for e in exs], 5)
        found = sum(answer_in_passages(p, e.golden_answers) for e, p in zip(exs, hits))
        return found / len(exs)

    retriever = BM25Retriever(world.corpus, FACTBOOK_BM25)
    print("\n| question type | hops | questions | answer recall@5 (question as query) |")
    print("|---|---|---|---|")
    for qtype, exs in sorted(by_type.items(), key=lambda kv: (kv[1][0].metadata["hops"], kv[0])):
        print(
            f"| {qtype} | {exs[0].metadata['hops']} | {len(exs)} | "
            f"{recall_at_5(retriever, exs):.3f} |"
        )

    if args.sweep:
        single = sorted(t for t, exs in by_type.items() if exs[0].metadata["hops"] == 1)
        print("\n| title_weight | b | " + " | ".join(single) + " |")
        print("|---|---|" + "---|" * len(single))
        for title_weight in (1, 2, 3):
            for b in (0.75, 0.5, 0.3):
                config = replace(FACTBOOK_BM25, title_weight=title_weight, b=b)
                r = BM25Retriever(world.corpus, config, persist=False)
                cells = " | ".join(f"{recall_at_5(r, by_type[t]):.3f}" for t in single)
                print(f"| {title_weight} | {b} | {cells} |")


if __name__ == "__main__":
    main()
