from collections import defaultdict

import pytest

from research_env.data.factbook import load_factbook_world
from research_env.data.types import Passage
from research_env.resolve import factbook_bm25
from research_env.retrieval.base import Retriever
from research_env.retrieval.bm25 import BM25Config, BM25Retriever
from research_env.rewards import answer_in_passages

TINY = [
    Passage("pe", "Peru — Government — Capital", "name: Lima; time difference: UTC-5"),
    Passage("cl", "Chile — Government — Capital", "name: Santiago; time difference: UTC-3"),
    Passage("cla", "Chile — Geography — Area", "total: 756,102 sq km"),
    Passage("bo", "Bolivia — Government — Capital", "name: La Paz (administrative)"),
    # Unrelated passages: with only a handful of documents, Okapi's idf of a term found in half
    # of them is 0, and rank_bm25 would ignore "chile" altogether.
    *(Passage(f"x{i}", f"Filler {i}", f"unrelated text number {i} about rivers") for i in range(6)),
]


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_tiny_corpus_ranking_and_edge_queries(backend, tmp_path):
    r = BM25Retriever(TINY, BM25Config(backend=backend), index_dir=tmp_path / "idx")
    assert isinstance(r, Retriever)
    hits = r.search("What is the capital of Chile?", k=2)
    assert hits[0].id == "cl"
    assert all(p.score is not None and p.score > 0 for p in hits)
    assert [p.score for p in hits] == sorted((p.score for p in hits), reverse=True)
    assert r.search("zzzz unknownword", k=3) == []  # nothing matches: no fake passages
    assert r.search("", k=3) == []
    assert r.search("the of and", k=3) == []  # stop words only
    assert len(r.search("capital", k=20)) == 3  # k larger than the matches
    assert r.search_batch([], k=3) == []
    with pytest.raises(ValueError, match="expected k >= 1, got 0"):
        r.search("lima", k=0)


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_index_persisted_and_reloaded(backend, tmp_path):
    first = BM25Retriever(TINY, BM25Config(backend=backend), index_dir=tmp_path / "idx")
    assert first.build_seconds > 0 and first.load_seconds == 0
    second = BM25Retriever(TINY, BM25Config(backend=backend), index_dir=tmp_path / "idx")
    assert second.build_seconds == 0 and second.load_seconds > 0
    assert first.index_dir == second.index_dir == tmp_path / "idx"
    assert BM25Retriever(TINY, persist=False).index_dir is None
    queries = ["capital of peru", "area of chile", "la paz"]
    assert second.search_batch(queries, 3) == first.search_batch(queries, 3)


def test_changed_corpus_gets_a_fresh_index(monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path))
    a = BM25Retriever(TINY)
    b = BM25Retriever([*TINY, Passage("x", "Extra", "text")])
    assert a.fingerprint != b.fingerprint
    assert b.build_seconds > 0
    assert BM25Retriever(TINY).load_seconds > 0


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="backend"):
        BM25Config(backend="lucene")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 0 <= b <= 1, got 2"):
        BM25Config(b=2)
    with pytest.raises(ValueError, match="non-empty corpus"):
        BM25Retriever([], persist=False)


def test_single_hop_answer_recall_at_5():
    world = load_factbook_world()
    retriever = factbook_bm25("bm25s")
    by_type = defaultdict(list)
    for e in world.examples:
        if e.metadata["hops"] == 1:
            by_type[e.metadata["type"]].append(e)
    assert by_type, "expected single-hop questions in the Factbook world"
    for qtype, examples in sorted(by_type.items()):
        results = retriever.search_batch([e.question for e in examples], 5)
        recall = sum(
            answer_in_passages(r, e.golden_answers) for r, e in zip(results, examples)
        ) / len(examples)
        print(f"{qtype}: answer recall@5 = {recall:.3f} over {len(examples)}")
        assert recall >= 0.8, f"{qtype}: answer recall@5 {recall:.3f} below the 0.8 floor"


def test_backends_agree_on_top5():
    """bm25s (Lucene idf) and rank_bm25 (Okapi idf) index the same tokens: rankings agree."""
    world = load_factbook_world()
    sample = world.examples[:: max(1, len(world.examples) // 100)][:100]
    queries = [e.question for e in sample]
    fast = factbook_bm25("bm25s").search_batch(queries, 5)
    ref = factbook_bm25("rank_bm25").search_batch(queries, 5)
    same = sum({p.id for p in a} == {p.id for p in b} for a, b in zip(fast, ref)) / len(queries)
    mean = sum(len({p.id for p in a} & {p.id for p in b}) / 5 for a, b in zip(fast, ref)) / len(
        queries
    )
    print(f"identical top-5 sets: {same:.3f} of queries; mean top-5 overlap {mean:.3f}")
    assert same >= 0.9
    assert mean >= 0.95
