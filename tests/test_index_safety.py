"""Stored BM25 indexes (issue 15): a stale directory is refused, nothing is ever unpickled."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from research_env.data.types import Passage
from research_env.retrieval.bm25 import BM25Config, BM25Retriever, StaleIndexError

CORPUS = [
    Passage("peru", "Peru — Capital", "name: Lima"),
    Passage("japan", "Japan — Capital", "name: Tokyo"),
    Passage("chile", "Chile — Capital", "name: Santiago"),
    Passage("kenya", "Kenya — Highest point", "Mount Kenya"),
]
# The corpus edited: Peru's passage now says something else, and a passage was added.
EDITED = [Passage("peru", "Peru — Currency", "the sol"), *CORPUS[1:], CORPUS[0]]
QUERIES = ["capital of Peru", "Tokyo", "highest point", "nothing at all", ""]


class Payload:
    """Unpickling this creates ``path``: proof that a pickle was loaded (and could run code)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("backend", ["bm25s", "rank_bm25"])
def test_a_stale_index_dir_is_refused_not_used(tmp_path, backend):
    config = BM25Config(backend=backend)
    built = BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
    assert built.search("capital of Peru", 1)[0].id == "peru"
    with pytest.raises(StaleIndexError) as err:
        BM25Retriever(EDITED, config, index_dir=tmp_path / "idx")
    assert str(tmp_path / "idx") in str(err.value)
    assert err.value.found == built.fingerprint
    assert "another corpus or configuration" in str(err.value)
    with pytest.raises(StaleIndexError):  # other settings, same corpus: refused too
        BM25Retriever(CORPUS, BM25Config(backend=backend, k1=2.0), index_dir=tmp_path / "idx")
    fresh = BM25Retriever(EDITED, config, index_dir=tmp_path / "other")
    assert fresh.search("capital of Peru", 1)[0].id == "peru"
    assert fresh.search("capital of Peru", 1)[0].text == "name: Lima"  # the edited corpus's
    reloaded = BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")  # the right corpus
    assert reloaded.load_seconds > 0
    assert reloaded.search_batch(QUERIES, 3) == built.search_batch(QUERIES, 3)


def test_rank_bm25_index_is_json_and_reloads_to_the_same_scores(tmp_path):
    config = BM25Config(backend="rank_bm25", k1=1.1, b=0.6, title_weight=2)
    built = BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["COMPLETE", "rank_bm25.json"]
    state = json.loads((tmp_path / "idx" / "rank_bm25.json").read_text(encoding="utf-8"))
    assert state["format"] == "research-env/rank_bm25" and len(state["doc_len"]) == 4
    reloaded = BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
    assert reloaded.load_seconds > 0 and reloaded.build_seconds == 0
    in_memory = BM25Retriever(CORPUS, config, persist=False)
    assert reloaded.search_batch(QUERIES, 4) == in_memory.search_batch(QUERIES, 4)
    assert reloaded.search_batch(QUERIES, 4) == built.search_batch(QUERIES, 4)


def test_a_pickle_in_the_index_dir_is_never_loaded(tmp_path):
    """An index dir with the right fingerprint and a (hostile) rank_bm25.pkl, as an index
    saved by an older version would look: the pickle is ignored and the index rebuilt."""
    config = BM25Config(backend="rank_bm25")
    expected = BM25Retriever(CORPUS, config, persist=False)
    directory = tmp_path / "idx"
    directory.mkdir()
    ran = tmp_path / "payload-ran"
    (directory / "rank_bm25.pkl").write_bytes(pickle.dumps(Payload(ran)))
    (directory / "COMPLETE").write_text(expected.fingerprint)  # the fingerprint is not secret
    r = BM25Retriever(CORPUS, config, index_dir=directory)
    assert not ran.exists()
    assert r.build_seconds > 0 and (directory / "rank_bm25.json").exists()
    assert r.search_batch(QUERIES, 2) == expected.search_batch(QUERIES, 2)


def test_a_corrupt_index_file_fails_with_its_path(tmp_path):
    config = BM25Config(backend="rank_bm25")
    BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
    path = tmp_path / "idx" / "rank_bm25.json"
    path.write_bytes(path.read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match="cannot load the rank_bm25 index") as err:
        BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
    assert "delete the directory to rebuild it" in str(err.value)
    path.write_text(json.dumps({"format": "research-env/rank_bm25", "version": 1}))
    with pytest.raises(ValueError, match=r"rank_bm25\.json: not a rank_bm25 index saved by"):
        BM25Retriever(CORPUS, config, index_dir=tmp_path / "idx")
