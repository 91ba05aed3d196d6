"""The numba MaxScore accelerator of the bm25s backend: same results as bm25s's own scoring."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from research_env.data.types import Passage
from research_env.retrieval.bm25 import BM25Config, BM25Retriever, numba_available

pytestmark = pytest.mark.skipif(not numba_available(), reason="needs numba")

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwxyz" for v in "aeiou"]


def zipf_corpus(n, seed=0, vocab=3000):
    """Passages of Zipf-distributed pseudo-words: frequent terms occur in most passages."""
    rng = np.random.default_rng(seed)
    words = [SYLLABLES[i // 100] + SYLLABLES[i % 100] for i in range(vocab)]
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    lengths = rng.integers(20, 80, size=n)
    ids = rng.choice(vocab, size=int(lengths.sum()), p=p / p.sum())
    out, offset = [], 0
    for i, length in enumerate(lengths):
        text = " ".join(words[j] for j in ids[offset : offset + length])
        out.append(Passage(f"d{i}", f"title {i % 7}", text))
        offset += length
    return out, words, rng


def queries_for(corpus, words, rng, n=300):
    qs = []
    for _ in range(n):
        text = corpus[int(rng.integers(len(corpus)))].text.split()
        qs.append(" ".join(rng.choice(text, size=int(rng.integers(1, 7)))))
    # Frequent words only, a repeated word, unknown words, stop words, the title field.
    qs += [" ".join(words[:4]), f"{words[0]} {words[0]} {words[1]}", "zzzz qqqq", "the of", ""]
    qs += [f"title {words[5]}", words[2999], f"{words[10]} zzzz"]
    return qs


@pytest.fixture(scope="module")
def zipf(tmp_path_factory):
    corpus, words, rng = zipf_corpus(3000)
    index_dir = tmp_path_factory.mktemp("idx") / "bm25s"
    fast = BM25Retriever(corpus, BM25Config(), index_dir=index_dir)
    return corpus, queries_for(corpus, words, rng), fast, index_dir


def test_numba_accelerator_is_the_default_and_recorded(zipf):
    corpus, _, fast, index_dir = zipf
    assert fast.accelerator == "numba"
    slow = BM25Retriever(corpus, BM25Config(accelerator="numpy"), index_dir=index_dir)
    assert slow.accelerator == "numpy"
    assert slow.load_seconds > 0  # the same persisted index, loaded (memory-mapped)
    # Runtime settings do not change the index, hence neither its fingerprint nor its place.
    assert slow.fingerprint == fast.fingerprint
    assert BM25Retriever(corpus[:10], persist=False).accelerator == "numba"
    assert BM25Retriever(corpus[:10], BM25Config("rank_bm25"), persist=False).accelerator == (
        "rank_bm25"
    )


@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_numba_and_numpy_return_identical_passages_and_scores(zipf, k):
    corpus, queries, fast, index_dir = zipf
    slow = BM25Retriever(corpus, BM25Config(accelerator="numpy"), index_dir=index_dir)
    got, want = fast.search_batch(queries, k), slow.search_batch(queries, k)
    assert got == want  # ids, texts and scores (bit-identical float32 sums)
    assert sum(len(r) for r in got) > len(queries) * min(k, 5) * 0.8
    assert all(len(r) <= k for r in got)
    for hits in got:  # best first, ties by document order
        keys = [(-p.score, int(p.id[1:])) for p in hits]
        assert keys == sorted(keys)


def test_batched_threaded_and_one_at_a_time_agree(zipf):
    corpus, queries, fast, index_dir = zipf
    batched = fast.search_batch(queries, 5)
    assert [fast.search(q, 5) for q in queries] == batched
    threaded = BM25Retriever(corpus, BM25Config(n_threads=2), index_dir=index_dir)
    assert threaded.search_batch(queries, 5) == batched
    with ThreadPoolExecutor(4) as pool:  # concurrent calls never share work buffers
        assert list(pool.map(lambda q: fast.search(q, 5), queries)) == batched


def test_ties_are_broken_by_document_order_in_every_engine():
    corpus = [Passage(f"p{i}", "", "alpha beta") for i in range(12)]
    corpus += [Passage("y", "", "alpha alpha beta")]
    corpus += [Passage(f"x{i}", "", f"gamma delta {i}") for i in range(20)]  # rank_bm25's idf
    for config in (BM25Config(), BM25Config(accelerator="numpy"), BM25Config("rank_bm25")):
        r = BM25Retriever(corpus, config, persist=False)
        assert [p.id for p in r.search("alpha", 4)] == ["y", "p0", "p1", "p2"], config
        assert [p.id for p in r.search("alpha beta", 3)] == ["y", "p0", "p1"], config


def test_k_larger_than_the_corpus_and_tiny_corpora():
    corpus = [Passage("a", "", "red fish"), Passage("b", "", "blue fish"), Passage("c", "", "x")]
    r = BM25Retriever(corpus, persist=False)
    assert [p.id for p in r.search("fish", 10)] == ["a", "b"]
    assert [p.id for p in r.search("blue fish", 10)] == ["b", "a"]
    assert r.search_batch(["fish", "nothing", "x"], 100)[1] == []
    one = BM25Retriever([Passage("only", "", "word")], persist=False)
    assert [p.id for p in one.search("word", 5)] == ["only"]


def test_index_without_term_maxima_still_loads(zipf, tmp_path):
    corpus, queries, _, _ = zipf
    built = BM25Retriever(corpus, BM25Config(), index_dir=tmp_path / "idx")
    assert (tmp_path / "idx" / "term_max.npy").exists()
    (tmp_path / "idx" / "term_max.npy").unlink()  # an index saved before they were stored
    reloaded = BM25Retriever(corpus, BM25Config(), index_dir=tmp_path / "idx")
    assert reloaded.load_seconds > 0
    assert reloaded.search_batch(queries, 5) == built.search_batch(queries, 5)


def test_warmup_and_bad_settings():
    r = BM25Retriever([Passage("a", "t", "some text")], persist=False)
    assert r.warmup() >= 0
    with pytest.raises(ValueError, match="expected accelerator in"):
        BM25Config(accelerator="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected n_threads >= 0"):
        BM25Config(n_threads=-1)
