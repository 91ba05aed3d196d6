"""Hybrid retrieval: reciprocal-rank fusion (RRF) of any retrievers' rankings.

RRF (Cormack, Clarke and Büttcher, SIGIR 2009) scores a passage by the ranks it gets, not by the
raw scores, so BM25 scores and cosine similarities need no calibration:

    score(p) = sum over retrievers i of  weight_i / (k_rrf + rank_i(p))

with ``rank_i(p)`` starting at 1, and a passage absent from list ``i`` contributing nothing.
Passages are identified by ``Passage.id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from research_env.data.types import Passage
from research_env.retrieval.base import RetrievalError, Retriever, check_k


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Passage]],
    weights: Sequence[float] | None = None,
    k_rrf: float = 60.0,
) -> list[Passage]:
    """Fuse ranked lists into one, best first, each passage's ``score`` set to its RRF score.

    Ties are broken by the best rank the passage got in any list, then by the order of the
    lists, so the result is deterministic. A passage appearing twice in one list counts once
    (at its best rank). The returned passage is the first copy seen (list order, then rank).

    Args:
        rankings: One ranked list per retriever, best first.
        weights: One weight per list (default: all 1).
        k_rrf: The RRF constant; larger values flatten the contribution of the top ranks.

    Returns:
        Every passage of any list, ranked by fused score.

    >>> a, b, c = (Passage(i, i, "") for i in "abc")
    >>> [(p.id, round(p.score, 4)) for p in reciprocal_rank_fusion([[a, b], [b, c]], k_rrf=1)]
    [('b', 0.8333), ('a', 0.5), ('c', 0.3333)]
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"expected {len(rankings)} weights (one per ranking), got {len(weights)}")
    scores: dict[str, float] = {}
    best_rank: dict[str, tuple[int, int]] = {}
    first: dict[str, Passage] = {}
    for list_no, (ranking, weight) in enumerate(zip(rankings, weights)):
        seen: set[str] = set()
        for rank, passage in enumerate(ranking, start=1):
            if passage.id in seen:
                continue
            seen.add(passage.id)
            scores[passage.id] = scores.get(passage.id, 0.0) + weight / (k_rrf + rank)
            best_rank[passage.id] = min(best_rank.get(passage.id, (rank, list_no)), (rank, list_no))
            first.setdefault(passage.id, passage)
    order = sorted(scores, key=lambda pid: (-scores[pid], best_rank[pid]))
    return [replace(first[pid], score=scores[pid]) for pid in order]


class HybridRetriever:
    """Reciprocal-rank fusion of several retrievers (e.g. BM25 + dense).

    Each retriever is asked for its top ``max(k, depth)`` passages; the fused list is cut to
    ``k``. ``search_batch`` calls each inner retriever's ``search_batch`` exactly once.

    Args:
        retrievers: At least one retriever.
        weights: One non-negative weight per retriever (default: all 1).
        k_rrf: The RRF constant (60 in the original paper and in most toolkits).
        depth: How many passages to take from each retriever before fusing.

    Raises:
        ValueError: On no retrievers, mismatched or negative weights, ``k_rrf < 0`` or
            ``depth < 1``.
        TypeError: If an element does not implement the :class:`Retriever` protocol.

    Example:
        >>> from research_env.retrieval.bm25 import BM25Retriever
        >>> docs = [Passage("pe", "Peru", "capital: Lima"),
        ...         Passage("cl", "Chile", "capital: Santiago")]
        >>> bm25 = BM25Retriever(docs, persist=False)
        >>> [p.id for p in HybridRetriever([bm25, bm25]).search("Chile", k=2)]
        ['cl']
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        weights: Sequence[float] | None = None,
        *,
        k_rrf: float = 60.0,
        depth: int = 50,
    ) -> None:
        if not retrievers:
            raise ValueError("expected at least one retriever, got none")
        for r in retrievers:
            if not isinstance(r, Retriever):
                raise TypeError(
                    f"expected Retrievers (search / search_batch methods), got {type(r).__name__}"
                )
        if weights is not None and len(weights) != len(retrievers):
            raise ValueError(
                f"expected {len(retrievers)} weights (one per retriever), got {len(weights)}"
            )
        if weights is not None and any(w < 0 for w in weights):
            raise ValueError(f"expected non-negative weights, got {list(weights)}")
        if k_rrf < 0:
            raise ValueError(f"expected k_rrf >= 0, got {k_rrf!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"expected depth >= 1, got {depth!r}")
        self.retrievers = list(retrievers)
        self.weights = list(weights) if weights is not None else [1.0] * len(retrievers)
        self.k_rrf = k_rrf
        self.depth = depth

    def search(self, query: str, k: int) -> list[Passage]:
        """Return the top-``k`` fused passages for ``query`` (``score``: the RRF score)."""
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return the top-``k`` fused passages of each query.

        Raises:
            RetrievalError: If an inner retriever fails or returns the wrong number of lists.
        """
        check_k(k)
        if not queries:
            return []
        per_retriever = []
        for retriever in self.retrievers:
            lists = retriever.search_batch(queries, max(k, self.depth))
            if len(lists) != len(queries):
                raise RetrievalError(
                    f"{type(retriever).__name__}.search_batch returned {len(lists)} result lists "
                    f"for {len(queries)} queries"
                )
            per_retriever.append(lists)
        fused = []
        for i in range(len(queries)):
            rankings = [lists[i] for lists in per_retriever]
            fused.append(reciprocal_rank_fusion(rankings, self.weights, self.k_rrf)[:k])
        return fused
