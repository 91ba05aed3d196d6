"""Which second queries find a bridge question's second hop? (BM25 over the Factbook, no model.)

A bridge question ("the currency of the country whose capital is Santiago") needs a second
search for the bridge entity (Chile). This script writes that query for every bridge question
of a split in three ways and counts how often the retriever's top-k holds the question's
second supporting passage (``metadata["support"][1]``)::

    python benchmarks/bridge_queries.py --split train --top_k 4

It tells what a reward on the *query text* could add to the support credit
(``grpo/shaping.py:em_search_cost_support``), which already pays for finding that passage:
where naming the entity and the field finds the passage, both rewards pay the same episodes.
"""

from __future__ import annotations

import argparse

SECOND_FIELD = {
    "capital-currency": "currency",
    "capital-highest-point": "highest point",
    "border-capital": "capital",
    "border-currency": "currency",
}
"""The field the second hop asks for, by bridge template."""


def main(argv: list[str] | None = None) -> None:
    """Print the share of bridge questions whose second hop each query kind finds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--top_k", type=int, default=4, help="the factbook-multihop suite's")
    args = parser.parse_args(argv)

    from research_env.env import SearchQAEnv

    env = SearchQAEnv(dataset="factbook", split=args.split, top_k=args.top_k)
    questions = [ex for ex in env.examples if ex.metadata.get("type") == "bridge"]
    kinds = {
        "entity and field (e.g. 'Chile currency')": lambda e, f: f"{e} {f}",
        "entity alone (e.g. 'Chile')": lambda e, f: e,
        "the question again": None,
    }
    print(f"{len(questions)} {args.split}-split bridge questions, BM25 top-{args.top_k}")
    print("| second query | finds the second hop's passage |\n|---|---|")
    for name, write in kinds.items():
        found = 0
        for ex in questions:
            entity, field = ex.metadata["entities"][-1], SECOND_FIELD[ex.metadata["template"]]
            query = ex.question if write is None else write(entity, field)
            ids = [p.id for p in env.retriever.search(query, args.top_k)]
            found += ex.metadata["support"][1] in ids
        print(f"| {name} | {found / len(questions):.3f} |")
    env.close()


if __name__ == "__main__":
    main()
