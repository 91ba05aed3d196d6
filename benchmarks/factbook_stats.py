"""Counts of the embedded Factbook world as markdown (the tables of docs/factbook.md).

Run: ``.venv/bin/python benchmarks/factbook_stats.py`` (uses the normal cache; pass ``--fresh``
to build into a temporary cache and report the build and cached-load times, ``--examples`` to
also print one question per template).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="build in a temporary cache")
    parser.add_argument("--examples", action="store_true", help="print one question per template")
    args = parser.parse_args()
    if args.fresh:
        os.environ["RESEARCH_ENV_CACHE"] = tempfile.mkdtemp(prefix="research-env-factbook-")

    from research_env.data.factbook import load_factbook_world
    from research_env.data.factbook.qa import QUESTION_TYPES, SPLITS
    from research_env.data.factbook.world import clear_memo

    start = time.perf_counter()
    world = load_factbook_world()
    first = time.perf_counter() - start
    if args.fresh:
        clear_memo()
        start = time.perf_counter()
        load_factbook_world()
        print(f"build: {first:.2f} s; cached load: {time.perf_counter() - start:.3f} s\n")

    chunked = sum(1 for p in world.corpus if not p.id.endswith("/0"))
    entries = len({p.id.split("/")[0] for p in world.corpus})
    print(
        f"Passages: {len(world.corpus):,} from {entries} Factbook entries "
        f"({len(world.corpus) - chunked:,} fields, {chunked:,} extra chunks of long fields).\n"
    )

    counts = collections.Counter((e.metadata["type"], e.metadata["split"]) for e in world.examples)
    hops = {e.metadata["type"]: e.metadata["hops"] for e in world.examples}
    print("| type | hops | " + " | ".join(SPLITS) + " | total |")
    print("|---|---|" + "---|" * (len(SPLITS) + 1))
    for qtype in QUESTION_TYPES:
        row = [counts[qtype, s] for s in SPLITS]
        print(
            f"| `{qtype}` | {hops.get(qtype, '-')} | "
            + " | ".join(str(n) for n in row)
            + f" | {sum(row)} |"
        )
    totals = [sum(counts[t, s] for t in QUESTION_TYPES) for s in SPLITS]
    print("| **all** | | " + " | ".join(f"**{n}**" for n in totals) + f" | **{sum(totals)}** |")

    templates = collections.Counter(e.metadata["template"] for e in world.examples)
    print("\n| template | questions |")
    print("|---|---|")
    for template, n in sorted(templates.items()):
        print(f"| `{template}` | {n} |")

    if args.examples:
        seen: set[str] = set()
        print()
        for e in world.examples:
            if e.metadata["template"] not in seen:
                seen.add(e.metadata["template"])
                print(
                    f"- `{e.id}`: {e.question} -> {e.golden_answers} "
                    f"(support: {e.metadata['support']})"
                )


if __name__ == "__main__":
    main()
