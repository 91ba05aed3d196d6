import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import research_env  # noqa: F401
from research_env.data.types import QAExample
from research_env.env import SearchQAEnv
from research_env.resolve import resolve_retriever
from research_env.retrieval.bm25 import BM25Retriever
from research_env.retrieval.closed import (
    ClosedCorpusConfig,
    ClosedCorpusRetriever,
    PerExampleRetriever,
    context_passages,
)
from research_env.vector import SearchQAVectorEnv

SEARCH = "<think>look it up</think><search>{}</search>"
ANSWER = "<think>found it</think><answer>\\boxed{{{}}}</answer>"

# HotpotQA distractor layout: every question carries its own paragraphs, and the paragraphs of
# different questions share words ("born", "river", "Paris"), so a leak would show.
HOTPOT = [
    {
        "id": "5a8b57f25542995d1e6f1371",
        "question": "Were Scott Derrickson and Ed Wood of the same nationality?",
        "golden_answers": ["yes"],
        "metadata": {
            "type": "comparison",
            "context": [
                [
                    "Scott Derrickson",
                    ["Scott Derrickson is an American director.", " He lives in Los Angeles."],
                ],
                [
                    "Ed Wood",
                    [
                        "Edward Davis Wood Jr. was an American filmmaker.",
                        " He was born in Poughkeepsie.",
                    ],
                ],
                ["Paris Hilton", ["Paris Hilton was born in New York City."]],
                ["Seine", ["The Seine is a river that flows through Paris."]],
            ],
        },
    },
    {
        "id": "5a8c7595554299585d9e36b6",
        "question": "What river flows through the city where Marie Curie was born?",
        "golden_answers": ["Vistula"],
        "metadata": {
            "type": "bridge",
            "context": [
                ["Marie Curie", ["Marie Curie was born in Warsaw.", " She worked in Paris."]],
                ["Warsaw", ["Warsaw stands on the Vistula river."]],
                ["Krakow", ["Krakow lies on the Vistula too."]],
            ],
        },
    },
    {
        "id": "5ae0185b55429942ec259c1b",
        "question": "Who directed the film shot in Poughkeepsie?",
        "golden_answers": ["Ann Lee"],
        "metadata": {
            "type": "bridge",
            "context": [
                ["Hudson Film", ["Hudson Film was shot in Poughkeepsie.", " Ann Lee directed it."]],
                ["Ann Lee", ["Ann Lee is a director born near the Hudson river."]],
            ],
        },
    },
]


@pytest.fixture
def hotpot_jsonl(tmp_path):
    path = tmp_path / "hotpot_dev_distractor.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in HOTPOT), encoding="utf-8")
    return path


def own_ids(info, qid):
    return all(pid.startswith(qid + "/") for pid in info["retrieved_ids"])


def test_episodes_only_ever_see_their_own_passages(hotpot_jsonl):
    env = gym.make("SearchQA-v0", dataset=str(hotpot_jsonl), retriever="closed", max_turns=7)
    assert isinstance(env.unwrapped.retriever, ClosedCorpusRetriever)
    queries = ["born", "river Paris", "Poughkeepsie", "Vistula", "American director", "Seine"]
    seen = {}
    for record in HOTPOT:
        qid = record["id"]
        _, info = env.reset(seed=0, options={"question_id": qid})
        titles = {t for t, _ in record["metadata"]["context"]}
        for q in queries:
            _, _, terminated, truncated, info = env.step(SEARCH.format(q))
            assert not (terminated or truncated)
            assert own_ids(info, qid), (qid, q, info["retrieved_ids"])
            assert set(info["retrieved_titles"]) <= titles
            seen.setdefault(qid, set()).update(info["retrieved_ids"])
        assert info["turn"] == 6
    # Every question found passages, and none of another question's.
    assert all(seen[r["id"]] for r in HOTPOT)
    # The words of a question absent from its paragraphs find nothing (no shared corpus).
    env.reset(options={"question_id": HOTPOT[1]["id"]})
    obs, *_, info = env.step(SEARCH.format("Derrickson Hilton"))
    assert info["retrieved_ids"] == [] and "[no results]" in obs["observation"]


def test_bridge_question_is_answerable_from_its_context(hotpot_jsonl):
    env = gym.make("SearchQA-v0", dataset=str(hotpot_jsonl), retriever="closed")
    qid = HOTPOT[1]["id"]
    env.reset(options={"question_id": qid})
    *_, info = env.step(SEARCH.format("where was Marie Curie born"))
    assert info["retrieved_titles"][0] == "Marie Curie"
    obs, *_, info = env.step(SEARCH.format("river Warsaw"))
    assert info["retrieved_titles"][0] == "Warsaw" and "Vistula" in obs["observation"]
    _, reward, terminated, _, info = env.step(ANSWER.format("Vistula"))
    assert terminated and reward == 1.0
    assert info["reward_components"]["answer_in_retrieval"] is True


def test_vector_env_batches_per_question(hotpot_jsonl):
    class CountingClosed(ClosedCorpusRetriever):
        """The real closed-corpus retriever, counting search_batch calls per question."""

        def __init__(self):
            super().__init__()
            self.calls = []
            self.wrapped = {}

        def for_example(self, example):
            inner = super().for_example(example)
            calls = self.calls

            class Counted:
                def search(self, query, k):
                    return self.search_batch([query], k)[0]

                def search_batch(self, queries, k):
                    calls.append((example.id, len(queries)))
                    return inner.search_batch(queries, k)

            return self.wrapped.setdefault(example.id, Counted())

    retriever = CountingClosed()
    vec = SearchQAVectorEnv(4, dataset=str(hotpot_jsonl), retriever=retriever, max_turns=3)
    vec.reset(seed=0)
    q0, q1 = HOTPOT[0]["id"], HOTPOT[1]["id"]
    for i, qid in enumerate([q0, q1, q0, q1]):
        vec.envs[i].reset(options={"question_id": qid})
    _, _, _, _, infos = vec.step([SEARCH.format("born river")] * 4)
    assert sorted(retriever.calls) == [(q0, 2), (q1, 2)]  # one call per distinct question
    for i, qid in enumerate([q0, q1, q0, q1]):
        assert infos["retrieved_ids"][i] and own_ids(
            {"retrieved_ids": infos["retrieved_ids"][i]}, qid
        )


def test_vector_env_without_a_retriever_picks_what_a_single_env_picks(hotpot_jsonl):
    """No retriever named: the vector env uses the env's default for the dataset (closed
    corpus for questions that carry their passages), never the Factbook BM25 index."""
    single = SearchQAEnv(dataset=str(hotpot_jsonl), max_turns=3)
    vec = SearchQAVectorEnv(2, dataset=str(hotpot_jsonl), max_turns=3)
    assert type(vec.retriever) is type(single.retriever)
    assert not isinstance(vec.retriever, BM25Retriever)
    assert all(e.retriever is vec.retriever for e in vec.envs)
    _, started = vec.reset(seed=0)
    _, _, _, _, infos = vec.step([SEARCH.format("born river")] * 2)
    for i in range(2):
        assert infos["retrieved_ids"][i]
        assert own_ids({"retrieved_ids": infos["retrieved_ids"][i]}, started["question_id"][i])


def test_layouts_give_the_same_passages():
    hotpot = QAExample("q", "?", ["a"], {"context": [["T1", ["A b.", " C d."]], ["T2", ["E."]]]})
    hf = QAExample(
        "q",
        "?",
        ["a"],
        {"context": {"title": ["T1", "T2"], "sentences": [["A b.", " C d."], ["E."]]}},
    )
    dicts = QAExample(
        "q",
        "?",
        ["a"],
        {"context": [{"title": "T1", "text": "A b. C d."}, {"title": "T2", "sentences": ["E."]}]},
    )
    musique = QAExample(
        "q",
        "?",
        ["a"],
        {
            "paras": [
                {"title": "T1", "paragraph_text": "A b. C d.", "idx": 0},
                {"title": "T2", "paragraph_text": "E."},
            ]
        },
    )
    want = context_passages(hotpot)
    assert [(p.id, p.title, p.text) for p in want] == [
        ("q/0", "T1", "A b. C d."),
        ("q/1", "T2", "E."),
    ]
    assert context_passages(hf) == context_passages(dicts) == want
    assert context_passages(musique, field="paras") == want
    r = ClosedCorpusRetriever(ClosedCorpusConfig(field="paras"))
    assert [p.title for p in r.for_example(musique).search("E", 5)] == ["T2"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, r"question 'bad-1': no metadata\['context'\]"),
        ({"context": []}, r"question 'bad-1': metadata\['context'\]: no paragraphs"),
        (
            {"context": "Paris is big."},
            r"metadata\['context'\]: expected a list of paragraphs .* got str",
        ),
        (
            {"context": [["T", ["ok"]], ["T2", "not a list"]]},
            r"metadata\['context'\]\[1\]: expected \[title, \[sentence",
        ),
        ({"context": [{"title": "T"}]}, r"metadata\['context'\]\[0\]: expected a 'text' string"),
        ({"context": {"title": ["a", "b"], "sentences": [["x"]]}}, r"one sentence list per title"),
    ],
)
def test_malformed_context_is_named(metadata, message):
    example = QAExample("bad-1", "?", ["x"], metadata)
    with pytest.raises(ValueError, match=message):
        ClosedCorpusRetriever().for_example(example)
    env = SearchQAEnv(dataset=[example], retriever="closed")
    with pytest.raises(ValueError, match=message):  # surfaces at reset, naming the question
        env.reset(seed=0)


def test_malformed_line_in_a_jsonl_dataset(tmp_path):
    records = [*HOTPOT[:2], {**HOTPOT[2], "metadata": {"context": [["only a title"]]}}]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    env = SearchQAEnv(dataset=path, retriever="closed")
    env.reset(options={"question_id": HOTPOT[0]["id"]})  # good questions still play
    with pytest.raises(
        ValueError, match=f"question '{HOTPOT[2]['id']}': metadata\\['context'\\]\\[0\\]"
    ):
        env.reset(options={"question_id": HOTPOT[2]["id"]})


def test_tiny_bm25_agrees_with_the_bm25s_backend():
    example = QAExample("q", "?", ["a"], HOTPOT[0]["metadata"])
    tiny = ClosedCorpusRetriever().for_example(example)
    full = BM25Retriever(context_passages(example), persist=False)
    for q in ["born", "American director", "Paris river", "Ed Wood nationality", "nothing"]:
        a, b = tiny.search(q, 3), full.search(q, 3)
        assert [p.id for p in a] == [p.id for p in b], q
        assert [p.score for p in a] == pytest.approx([p.score for p in b], rel=1e-5)


def test_protocol_resolution_and_reuse():
    retriever = resolve_retriever("closed")
    assert retriever is resolve_retriever("closed")  # shared by every env of the process
    assert isinstance(retriever, PerExampleRetriever)
    example = QAExample("q", "?", ["a"], HOTPOT[1]["metadata"])
    assert retriever.for_example(example) is retriever.for_example(example)  # built once
    changed = QAExample("q", "?", ["a"], HOTPOT[2]["metadata"])  # same id, other passages
    assert retriever.for_example(changed) is not retriever.for_example(example)
    with pytest.raises(TypeError, match="for_example"):
        retriever.search("Warsaw", 3)


def test_check_env_and_determinism_in_closed_mode(hotpot_jsonl):
    env = gym.make("SearchQA-v0", dataset=str(hotpot_jsonl), retriever="closed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    runs = []
    for _ in range(2):
        env = SearchQAEnv(dataset=hotpot_jsonl, retriever="closed")
        transcript = [env.reset(seed=3)]
        transcript.append(env.step(SEARCH.format("born river")))
        runs.append(transcript)
    assert runs[0] == runs[1]
