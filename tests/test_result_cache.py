import json

import pytest

from research_env.data.types import Passage, QAExample
from research_env.env import SearchQAEnv
from research_env.retrieval.base import RetrievalError, Retriever
from research_env.retrieval.bm25 import BM25Retriever
from research_env.retrieval.closed import ClosedCorpusRetriever
from research_env.retrieval.result_cache import CachedRetriever
from research_env.vector import SearchQAVectorEnv

CORPUS = [
    Passage("pe", "Peru — Government — Capital", "name: Lima; time difference: UTC-5"),
    Passage("cl", "Chile — Government — Capital", "name: Santiago; time difference: UTC-3"),
    Passage("cla", "Chile — Geography — Area", "total: 756,102 sq km"),
    Passage("pea", "Peru — Geography — Area", "total: 1,285,216 sq km"),
    Passage("bo", "Bolivia — Government — Capital", "name: La Paz (administrative)"),
    *(Passage(f"x{i}", f"Filler {i}", f"unrelated text number {i} about rivers") for i in range(8)),
]
QUESTIONS = [
    QAExample("q-peru", "What is the capital of Peru?", ["Lima"]),
    QAExample("q-chile", "What is the capital of Chile?", ["Santiago"]),
    QAExample("q-area", "Which is larger, Peru or Chile?", ["Peru"]),
]
SEARCH = "<think>look it up</think><search>{}</search>"
ANSWER = "<think>found it</think><answer>\\boxed{{{}}}</answer>"


class CountingRetriever:
    """A real BM25 index, with its search_batch calls counted (no fingerprint attribute)."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[list[str]] = []

    def search(self, query, k):
        return self.search_batch([query], k)[0]

    def search_batch(self, queries, k):
        self.batches.append(list(queries))
        return self.inner.search_batch(queries, k)


@pytest.fixture(scope="module")
def bm25():
    return BM25Retriever(CORPUS, persist=False)


def play(env, seed, actions):
    """Reset with ``seed`` and take ``actions``; return everything the env gave back."""
    transcript = [env.reset(seed=seed)]
    for action in actions:
        transcript.append(env.step(action))
    return transcript


def test_hits_misses_and_one_inner_call_per_batch(bm25):
    counter = CountingRetriever(bm25)
    cached = CachedRetriever(counter, fingerprint="toy")
    assert isinstance(cached, Retriever)
    first = cached.search_batch(["capital of Peru", "Chile area", "capital of Peru"], 2)
    assert counter.batches == [["capital of Peru", "Chile area"]]  # each miss asked once
    assert (cached.stats.hits, cached.stats.misses, cached.stats.inner_calls) == (0, 3, 1)
    assert first[0] == first[2] == bm25.search("capital of Peru", 2)
    second = cached.search_batch(["Chile area", "la paz", "capital of Peru"], 2)
    assert counter.batches[1] == ["la paz"]  # only the new query reaches the index
    assert second == bm25.search_batch(["Chile area", "la paz", "capital of Peru"], 2)
    assert (cached.stats.hits, cached.stats.misses) == (2, 4)
    assert cached.search("capital of Peru", 3) == bm25.search("capital of Peru", 3)  # k is key
    assert counter.batches[2] == ["capital of Peru"]
    assert cached.search_batch(["capital of Peru"] * 3, 2) == [first[0]] * 3
    assert len(counter.batches) == 3 and cached.stats.hit_rate == pytest.approx(5 / 10)
    # A caller mutating a result list does not corrupt the cache.
    cached.search("capital of Peru", 2).clear()
    assert cached.search("capital of Peru", 2) == first[0]


def test_lru_evicts_the_least_recently_used(bm25):
    counter = CountingRetriever(bm25)
    cached = CachedRetriever(counter, fingerprint="toy", max_entries=2)
    cached.search("peru", 1)
    cached.search("chile", 1)
    cached.search("peru", 1)  # peru is now the most recent
    cached.search("bolivia", 1)  # evicts chile
    assert len(cached) == 2
    cached.search("peru", 1)
    cached.search("chile", 1)
    assert counter.batches == [["peru"], ["chile"], ["bolivia"], ["chile"]]


def test_disk_cache_serves_a_later_run_and_uses_the_index_fingerprint(bm25, tmp_path):
    path = tmp_path / "results.jsonl"
    with CachedRetriever(bm25, path=path) as first:
        assert first.fingerprint == bm25.fingerprint  # taken from BM25Retriever
        first.search_batch(["capital of Peru", "rivers"], 3)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["fingerprint"] == bm25.fingerprint
    counter = CountingRetriever(bm25)
    later = CachedRetriever(counter, path=path, fingerprint=bm25.fingerprint)
    assert later.search("rivers", 3) == bm25.search("rivers", 3)
    assert counter.batches == [] and later.stats.hits == 1
    # Another index (another corpus) must not be served these results.
    other = BM25Retriever([*CORPUS, Passage("new", "New", "text")], persist=False)
    with pytest.raises(ValueError, match="holds results of the index with fingerprint"):
        CachedRetriever(other, path=path)
    with pytest.raises(ValueError, match="no 'fingerprint' attribute"):
        CachedRetriever(CountingRetriever(bm25), path=tmp_path / "x.jsonl")


def test_record_then_replay_an_episode_without_the_index(bm25, tmp_path):
    path = tmp_path / "episode.jsonl"
    actions = [
        SEARCH.format("capital of Peru"),
        SEARCH.format("Chile area"),
        SEARCH.format("capital of Peru"),  # served from the cache, not recorded twice
        ANSWER.format("Lima"),
    ]
    recorder = CachedRetriever(bm25, mode="record", path=path)
    recorded = play(SearchQAEnv(dataset=QUESTIONS, retriever=recorder, max_turns=5), 7, actions)
    recorder.close()
    assert len(path.read_text().splitlines()) == 1 + 2  # header + two distinct searches
    assert recorded[1][4]["retrieved_ids"][0] == "pe"

    replayer = CachedRetriever(None, mode="replay", path=path)  # no index at all
    assert replayer.fingerprint == bm25.fingerprint
    replayed = play(SearchQAEnv(dataset=QUESTIONS, retriever=replayer, max_turns=5), 7, actions)
    assert replayed == recorded  # observations, rewards, flags and infos, exactly
    assert replayer.stats.misses == 0 and replayer.stats.hits == 3

    # The fingerprint given (or the wrapped retriever's) must match the recording's.
    with pytest.raises(ValueError, match="not 'another-index'"):
        CachedRetriever(None, mode="replay", path=path, fingerprint="another-index")
    assert len(CachedRetriever(bm25, mode="replay", path=path)) == 2


def test_replay_miss_is_a_retrieval_error_the_env_survives(bm25, tmp_path):
    path = tmp_path / "episode.jsonl"
    recorder = CachedRetriever(bm25, mode="record", path=path)
    recorder.search("capital of Peru", 5)
    recorder.close()
    replayer = CachedRetriever(None, mode="replay", path=path)
    with pytest.raises(RetrievalError, match=r"no recorded result for query 'la paz' \(k=5\)"):
        replayer.search("la paz", 5)

    env = SearchQAEnv(dataset=QUESTIONS, retriever=replayer, max_turns=4)
    env.reset(seed=0, options={"question_id": "q-peru"})
    obs, reward, terminated, truncated, info = env.step(SEARCH.format("never recorded"))
    assert "never recorded" in info["retrieval_error"]
    assert "retrieval error" in obs["observation"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    obs, reward, terminated, _, info = env.step(SEARCH.format("capital of Peru"))
    assert info["retrieval_error"] is None and info["retrieved_ids"][0] == "pe"
    _, reward, terminated, _, info = env.step(ANSWER.format("Lima"))
    assert terminated and reward == 1.0 and info["retrieval_failed"] is True

    # In a vector env, the batch that missed fails for its searchers only; the envs go on.
    vec = SearchQAVectorEnv(2, dataset=QUESTIONS, retriever=replayer)
    vec.reset(seed=0)
    _, _, terminated, _, infos = vec.step([SEARCH.format("capital of Peru"), "no action"])
    assert infos["retrieval_error"][0] is None
    _, _, _, _, infos = vec.step([SEARCH.format("unrecorded"), SEARCH.format("capital of Peru")])
    assert "unrecorded" in infos["retrieval_error"][0]


def test_bad_arguments_and_files(bm25, tmp_path):
    with pytest.raises(ValueError, match="expected mode in"):
        CachedRetriever(bm25, mode="write")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a retriever to wrap"):
        CachedRetriever(None)
    with pytest.raises(ValueError, match="needs path="):
        CachedRetriever(bm25, mode="record")
    with pytest.raises(FileNotFoundError, match="no results file"):
        CachedRetriever(None, mode="replay", path=tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="contradicts"):
        CachedRetriever(bm25, fingerprint="something-else")
    with pytest.raises(TypeError, match="answers per question"):
        CachedRetriever(ClosedCorpusRetriever())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "q1", "question": "?"}\n')
    with pytest.raises(ValueError, match="not a results file"):
        CachedRetriever(None, mode="replay", path=bad)
    # A last line cut short (an interrupted run) is skipped; a bad line elsewhere is named.
    path = tmp_path / "cut.jsonl"
    with CachedRetriever(bm25, mode="record", path=path) as rec:
        rec.search_batch(["peru", "chile"], 2)
    text = path.read_text()
    path.write_text(text[:-20])
    assert len(CachedRetriever(None, mode="replay", path=path)) == 1
    lines = text.splitlines()
    path.write_text("\n".join([lines[0], "{oops", lines[2]]) + "\n")
    with pytest.raises(ValueError, match=r"cut.jsonl:2: malformed result line"):
        CachedRetriever(None, mode="replay", path=path)
