"""Dense and hybrid retrieval with the real MiniLM encoder and real faiss indices, small corpora."""

import json
import subprocess
import sys
from collections.abc import Sequence

import faiss
import gymnasium as gym
import numpy as np
import pytest

from research_env.data.corpus import JsonlCorpus
from research_env.data.types import Passage, QAExample
from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.bm25 import BM25Retriever
from research_env.retrieval.dense import (
    ENCODER_PRESETS,
    DenseConfig,
    DenseRetriever,
    Encoder,
    EncoderConfig,
    encoder_config,
)
from research_env.retrieval.fusion import HybridRetriever, reciprocal_rank_fusion

TOPICS = [
    ("capital-pe", "Peru — Government — Capital", "Lima is the capital and seat of government."),
    ("capital-fr", "France — Government — Capital", "Paris is the capital city of France."),
    ("volcano", "Volcanoes", "A volcano is an opening in the crust through which lava erupts."),
    ("football", "Football", "Association football is a team sport played with a ball by 22."),
    ("coffee", "Coffee", "Coffee is a drink brewed from roasted coffee beans."),
    ("piano", "Piano", "The piano is a keyboard instrument whose strings are struck by hammers."),
    ("whale", "Blue whale", "The blue whale is a marine mammal, the largest animal known."),
    ("photosynthesis", "Photosynthesis", "Plants turn light, water and CO2 into sugar and oxygen."),
    ("bitcoin", "Bitcoin", "Bitcoin is a decentralised digital currency without a central bank."),
    ("everest", "Mount Everest", "Everest is Earth's highest mountain above sea level."),
]
# Paraphrases that share almost no words with the passage they should find.
PARAPHRASES = {
    "capital-pe": "Which city hosts the Peruvian government?",
    "volcano": "mountain that spews molten rock",
    "football": "the world's most popular ball game, soccer",
    "coffee": "hot beverage made from beans that contains caffeine",
    "piano": "musical instrument with black and white keys",
    "whale": "biggest creature living in the ocean",
    "photosynthesis": "how do green leaves make food from sunlight",
    "bitcoin": "cryptocurrency",
    "everest": "tallest peak in the world",
}
FILLER = [
    Passage(
        f"filler-{i}", f"Municipal record {i}", f"Record {i}: office hours, fees and forms {i}."
    )
    for i in range(70)
]
CORPUS = [Passage(pid, title, text) for pid, title, text in TOPICS] + FILLER


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dense")


@pytest.fixture(scope="module")
def flat(index_dir):
    return DenseRetriever(CORPUS, DenseConfig(), index_dir=index_dir, progress=False)


def test_flat_finds_paraphrases(flat):
    assert isinstance(flat, Retriever)
    assert flat.embedded_passages == len(CORPUS)
    results = flat.search_batch(list(PARAPHRASES.values()), k=3)
    top1 = {pid: hits[0].id for pid, hits in zip(PARAPHRASES, results)}
    assert top1 == {pid: pid for pid in PARAPHRASES}
    for hits in results:
        scores = [p.score for p in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(s is not None and -1.0 <= s <= 1.0 + 1e-5 for s in scores)  # cosine
    # One query alone and the same query inside a batch go through different matmul shapes, so the
    # cosine may differ in the last float32 bits (seen on CI: 0.64130563 vs 0.64130557).
    single = flat.search(PARAPHRASES["whale"], 1)[0]
    assert (single.id, single.title, single.text) == ("whale", "Blue whale", TOPICS[6][2])
    assert single.score == pytest.approx(results[5][0].score, abs=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        DenseConfig(index_type="hnsw", hnsw_m=8),
        DenseConfig(index_type="ivf", ivf_nlist=4, ivf_nprobe=4),
        DenseConfig(index_type="ivf"),  # nlist chosen from the corpus size
    ],
    ids=["hnsw", "ivf-nlist4", "ivf-auto"],
)
def test_hnsw_and_ivf_reuse_embeddings_and_agree_with_flat(flat, index_dir, config):
    r = DenseRetriever(CORPUS, config, index_dir=index_dir, progress=False)
    assert r.embedded_passages == 0  # the flat fixture's embeddings were reused
    assert r.build_seconds > 0 and r.index_path is not None and r.index_path.exists()
    queries = list(PARAPHRASES.values())
    assert [h[0].id for h in r.search_batch(queries, 1)] == list(PARAPHRASES)
    # The small indices are searched exhaustively, so they match flat exactly.
    assert [[p.id for p in h] for h in r.search_batch(queries, 5)] == [
        [p.id for p in h] for h in flat.search_batch(queries, 5)
    ]


def test_index_persisted_and_loaded_without_reembedding(flat, index_dir):
    again = DenseRetriever(CORPUS, DenseConfig(), index_dir=index_dir, progress=False)
    assert again.embedded_passages == 0 and again.build_seconds == 0 and again.load_seconds > 0
    assert again.index_path == flat.index_path
    files = sorted(p.name for p in index_dir.iterdir())
    assert "embeddings.npy" in files and "embeddings.json" in files
    assert f"{flat.index_path.stem}.json" in files
    meta = json.loads((index_dir / "embeddings.json").read_text())
    assert meta["passages"] == len(CORPUS) and meta["dimension"] == 384
    queries = ["tallest peak", "cryptocurrency", "office hours"]
    assert again.search_batch(queries, 4) == flat.search_batch(queries, 4)
    # The same directory holds only embeddings of this corpus and encoder.
    with pytest.raises(ValueError, match="holds the embeddings of another corpus or encoder"):
        DenseRetriever(CORPUS[:20], DenseConfig(), index_dir=index_dir, progress=False)


def test_default_cache_location_and_fingerprints(monkeypatch, tmp_path):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path))
    small = CORPUS[:12]
    r = DenseRetriever(small, progress=False)
    assert r.index_dir == tmp_path / "dense" / r.embeddings_fingerprint
    assert r.embedded_passages == 12
    assert DenseRetriever(small, progress=False).load_seconds > 0
    e5_like = DenseConfig(encoder=EncoderConfig(query_prefix="query: "))
    other = DenseRetriever(small, e5_like, progress=False)  # another encoder: re-embedded
    assert other.embeddings_fingerprint != r.embeddings_fingerprint
    assert other.embedded_passages == 12
    # Batch size and device do not change the embeddings: same cache entry.
    assert EncoderConfig(batch_size=3).cache_key() == EncoderConfig().cache_key()


def test_edge_queries_and_errors(flat):
    assert flat.search_batch([], 3) == []
    assert len(flat.search("", 2)) == 2  # an empty query still has a nearest neighbour
    assert len(flat.search("piano", 1000)) == len(CORPUS)  # k larger than the corpus
    with pytest.raises(ValueError, match="expected k >= 1, got 0"):
        flat.search("piano", 0)
    with pytest.raises(ValueError, match="non-empty corpus"):
        DenseRetriever([], persist=False)
    with pytest.raises(ValueError, match="index_type"):
        DenseConfig(index_type="pq")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected ivf_nlist <= number of passages"):
        DenseRetriever(CORPUS[:5], DenseConfig(index_type="ivf", ivf_nlist=50), persist=False)
    with pytest.raises(FileNotFoundError, match="encoder model folder '/nonexistent/e5'"):
        DenseRetriever(CORPUS[:5], DenseConfig(encoder_config("e5", model="/nonexistent/e5")))


def test_encoder_normalises_and_prefixes(flat):
    enc = Encoder()
    vectors = enc.encode_queries(["tallest peak", "coffee"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    prefixed = Encoder(EncoderConfig(query_prefix="query: ")).encode_queries(["tallest peak"])
    assert not np.allclose(prefixed[0], vectors[0])
    assert enc.passages_encoded == 0


def test_presets():
    assert ENCODER_PRESETS["minilm"] == EncoderConfig()
    e5 = encoder_config("e5", model="/models/e5-base-v2")
    assert (e5.query_prefix, e5.passage_prefix, e5.normalize) == ("query: ", "passage: ", True)
    assert encoder_config("/some/folder") == EncoderConfig(model="/some/folder")


def _flat_file(path, vectors, metric=None):
    index = (
        faiss.IndexFlatIP(vectors.shape[1])
        if metric is None
        else faiss.IndexFlatL2(vectors.shape[1])
    )
    index.add(vectors)
    faiss.write_index(index, str(path))
    return path


def test_from_index_file_serves_a_prebuilt_index(flat, index_dir, tmp_path):
    # An index built elsewhere (as FlashRAG builds e5_Flat.index), over a corpus jsonl file.
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text(
        "".join(json.dumps({"id": p.id, "contents": p.contents}) + "\n" for p in CORPUS),
        encoding="utf-8",
    )
    corpus = JsonlCorpus(corpus_file, cache=False)
    vectors = np.load(index_dir / "embeddings.npy")  # MiniLM vectors of CORPUS, in order
    path = _flat_file(tmp_path / "minilm_Flat.index", vectors)
    r = DenseRetriever.from_index_file(path, corpus, encoder="minilm")
    assert r.embedded_passages == 0 and r.config.index_type == "flat"
    hits = r.search_batch([PARAPHRASES["everest"], PARAPHRASES["coffee"]], 2)
    assert [h[0].id for h in hits] == ["everest", "coffee"]
    assert hits[0][0].title == "Mount Everest"
    # An L2 index: scores are negated distances, still best first.
    l2 = DenseRetriever.from_index_file(_flat_file(tmp_path / "l2.index", vectors, "l2"), corpus)
    l2_hits = l2.search(PARAPHRASES["everest"], 3)
    assert l2_hits[0].id == "everest" and l2_hits[0].score > l2_hits[1].score
    # Mismatches are named.
    with pytest.raises(ValueError, match=r"holds 80 vectors but the corpus has 79 passages"):
        DenseRetriever.from_index_file(path, CORPUS[:-1])
    small = _flat_file(tmp_path / "d16.index", np.zeros((len(CORPUS), 16), dtype=np.float32))
    with pytest.raises(ValueError, match="has dimension 16 but encoder"):
        DenseRetriever.from_index_file(small, CORPUS)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DenseRetriever.from_index_file(tmp_path / "missing.index", CORPUS)


def test_dense_over_a_jsonl_corpus_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_ENV_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "c.jsonl"
    f.write_text(
        "".join(json.dumps({"id": p.id, "contents": p.contents}) + "\n" for p in CORPUS[:10])
    )
    r = DenseRetriever(JsonlCorpus(f), DenseConfig(index_type="hnsw"), progress=False)
    assert r.embedded_passages == 10
    assert r.search(PARAPHRASES["bitcoin"], 1)[0].id == "bitcoin"
    # Passages come back read from the file (the corpus holds offsets only).
    assert r.search(PARAPHRASES["piano"], 1)[0].title == "Piano"
    again = DenseRetriever(JsonlCorpus(f), DenseConfig(index_type="hnsw"), progress=False)
    assert again.embedded_passages == 0 and again.load_seconds > 0


def test_dense_retriever_in_the_env(flat):
    qa = [QAExample("q", "What is the tallest peak in the world?", ["Everest"])]
    env = gym.make("SearchQA-v0", dataset=qa, retriever=flat, top_k=2)
    env.reset(seed=0)
    obs, _, terminated, _, _ = env.step("<search>tallest mountain</search>")
    assert "Mount Everest" in obs["observation"] and not terminated
    env.close()


def test_env_package_imports_without_torch_or_faiss():
    code = (
        "import sys, research_env, research_env.retrieval.dense, research_env.retrieval.fusion,"
        " research_env.data.corpus, research_env.resolve;"
        " bad = {'torch', 'faiss', 'sentence_transformers'} & set(sys.modules);"
        " assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# Hybrid (reciprocal-rank fusion)
# ---------------------------------------------------------------------------------------------


class FixedRankings:
    """A retriever whose ranking for each query is given up front (a real Retriever)."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[int, int]] = []

    def search(self, query: str, k: int) -> list[Passage]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        self.calls.append((len(queries), k))
        return [[Passage(i, i.upper(), "") for i in self.rankings[q][:k]] for q in queries]


def test_rrf_on_hand_computed_examples():
    lex = FixedRankings({"q": ["a", "b", "c"], "r": ["x"]})
    sem = FixedRankings({"q": ["c", "a", "d"], "r": []})
    hybrid = HybridRetriever([lex, sem], k_rrf=60)
    hits = hybrid.search("q", k=4)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [p.id for p in hits] == ["a", "c", "b", "d"]
    expected = [1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63]
    assert [p.score for p in hits] == pytest.approx(expected)
    assert hybrid.search("q", k=2) == hits[:2]
    assert [p.id for p in hybrid.search("r", k=3)] == ["x"]
    # Weights: 3x on the second retriever puts its first choice on top.
    weighted = HybridRetriever([lex, sem], weights=[1, 3], k_rrf=60).search("q", 4)
    assert [p.id for p in weighted] == ["c", "a", "d", "b"]
    # k_rrf = 0: plain reciprocal ranks. a: 1 + 1/2, c: 1/3 + 1, b: 1/2, d: 1/3.
    fused = reciprocal_rank_fusion([_ps("abc"), _ps("cad")], k_rrf=0)
    assert [p.id for p in fused] == ["a", "c", "b", "d"]
    assert [p.score for p in fused] == pytest.approx([1.5, 4 / 3, 0.5, 1 / 3])


def _ps(ids):
    return [Passage(i, i.upper(), "") for i in ids]


def test_rrf_ties_and_duplicates():
    # Equal scores and equal best ranks: the earlier list wins; a better best rank wins first.
    assert [p.id for p in reciprocal_rank_fusion([_ps("a"), _ps("b")])] == ["a", "b"]
    assert [p.id for p in reciprocal_rank_fusion([_ps("xa"), _ps("bx")], k_rrf=0)] == [
        "x",
        "b",
        "a",
    ]
    # A duplicate inside one list counts once, at its best rank.
    assert reciprocal_rank_fusion([_ps("aa")])[0].score == pytest.approx(1 / 61)
    # The first copy seen is returned, with the fused score.
    first = Passage("a", "First", "text", 9.0)
    fused = reciprocal_rank_fusion([[first], [Passage("a", "Second", "other", 1.0)]])
    assert fused == [Passage("a", "First", "text", pytest.approx(2 / 61))]
    with pytest.raises(ValueError, match="expected 2 weights"):
        reciprocal_rank_fusion([_ps("a"), _ps("b")], weights=[1])


def test_hybrid_calls_each_inner_search_batch_once():
    lex = FixedRankings({"q": ["a", "b"], "r": ["b"]})
    sem = FixedRankings({"q": ["b"], "r": ["a"]})
    hybrid = HybridRetriever([lex, sem], depth=20)
    assert isinstance(hybrid, Retriever)
    results = hybrid.search_batch(["q", "r", "q"], k=2)
    assert lex.calls == [(3, 20)] and sem.calls == [(3, 20)]
    assert [[p.id for p in hits] for hits in results] == [["b", "a"], ["b", "a"], ["b", "a"]]
    assert hybrid.search_batch([], 2) == []
    with pytest.raises(ValueError, match="expected k >= 1"):
        hybrid.search("q", 0)


def test_hybrid_argument_errors():
    lex = FixedRankings({})
    with pytest.raises(ValueError, match="at least one retriever"):
        HybridRetriever([])
    with pytest.raises(ValueError, match="expected 2 weights"):
        HybridRetriever([lex, lex], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        HybridRetriever([lex, lex], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="expected depth >= 1"):
        HybridRetriever([lex], depth=0)
    with pytest.raises(TypeError, match="expected Retrievers"):
        HybridRetriever([object()])  # type: ignore[list-item]


class Broken:
    def search(self, query: str, k: int) -> list[Passage]:
        raise RetrievalError("index offline")

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        raise RetrievalError("index offline")


class WrongCount(FixedRankings):
    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        return []


def test_hybrid_failures_are_retrieval_errors():
    ok = FixedRankings({"q": ["a"]})
    with pytest.raises(RetrievalError, match="index offline"):
        HybridRetriever([ok, Broken()]).search("q", 1)
    with pytest.raises(RetrievalError, match="returned 0 result lists for 1 queries"):
        HybridRetriever([ok, WrongCount({})]).search("q", 1)


def test_bm25_plus_dense_hybrid(flat, tmp_path):
    bm25 = BM25Retriever(CORPUS, index_dir=tmp_path / "bm25")
    hybrid = HybridRetriever([bm25, flat])
    # BM25 cannot match a pure paraphrase; the dense side supplies it.
    assert bm25.search(PARAPHRASES["bitcoin"], 1) == []
    assert hybrid.search(PARAPHRASES["bitcoin"], 1)[0].id == "bitcoin"
    # Exact tokens that the dense side ranks low are still found through BM25.
    hits = hybrid.search("Record 42: office hours", 3)
    assert hits[0].id == "filler-42"


@pytest.mark.slow  # embeds the whole Factbook corpus on first use (~8-36 min on 2 CPU cores)
def test_factbook_dense_and_hybrid_by_name():
    from collections import defaultdict

    from research_env.data.factbook import load_factbook_world
    from research_env.resolve import resolve_retriever
    from research_env.rewards import answer_in_passages

    dense, hybrid = resolve_retriever("dense"), resolve_retriever("hybrid")
    assert isinstance(dense, DenseRetriever) and isinstance(hybrid, HybridRetriever)
    assert resolve_retriever("dense") is dense  # one index per process
    by_type = defaultdict(list)
    for e in load_factbook_world().examples:
        if e.metadata["hops"] == 1:
            by_type[e.metadata["type"]].append(e)
    for qtype, examples in by_type.items():
        questions = [e.question for e in examples]
        for name, retriever, floor in [("dense", dense, 0.85), ("hybrid", hybrid, 0.98)]:
            hits = retriever.search_batch(questions, 5)
            found = sum(answer_in_passages(h, e.golden_answers) for e, h in zip(examples, hits))
            assert found / len(examples) >= floor, (name, qtype, found / len(examples))
