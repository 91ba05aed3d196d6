import gymnasium as gym
import numpy as np
import pytest

import research_env  # noqa: F401
from research_env.env import SearchQAEnv
from research_env.resolve import factbook_bm25
from research_env.retrieval.base import RetrievalError
from research_env.vector import SearchQAVectorEnv

SEARCH = "<think>look up</think><search>{}</search>"
ANSWER = "<think>done</think><answer>\\boxed{{{}}}</answer>"


class CountingRetriever:
    """The real Factbook BM25 index, with its calls counted."""

    def __init__(self, fail: bool = False):
        self.inner = factbook_bm25("bm25s")
        self.search_calls = 0
        self.batch_calls: list[int] = []
        self.fail = fail

    def search(self, query, k):
        self.search_calls += 1
        return self.inner.search(query, k)

    def search_batch(self, queries, k):
        self.batch_calls.append(len(queries))
        if self.fail:
            raise RetrievalError("index offline")
        return self.inner.search_batch(queries, k)


def test_make_vec_batches_retrieval_once_per_step():
    counter = CountingRetriever()
    envs = gym.make_vec(
        "SearchQA-v0", num_envs=4, vectorization_mode="vector_entry_point", retriever=counter
    )
    assert isinstance(envs.unwrapped, SearchQAVectorEnv)
    obs, infos = envs.reset(seed=0)
    assert len(obs["question"]) == 4 and set(obs["observation"]) == {""}
    actions = [SEARCH.format(q) for q in obs["question"]]
    obs, _, _, _, infos = envs.step(actions)
    assert counter.batch_calls == [4] and counter.search_calls == 0
    assert all(o.lstrip().startswith("<result>") for o in obs["observation"])
    assert infos["action_type"].tolist() == ["search"] * 4
    # two of four search: still one call, with two queries
    obs, *_ = envs.step(
        [SEARCH.format("capital of Peru"), "oops", ANSWER.format("x"), SEARCH.format("Chile")]
    )
    assert counter.batch_calls == [4, 2]
    # nobody searches: no call at all
    envs.reset(seed=1)
    envs.step([ANSWER.format("Lima")] * 4)
    assert counter.batch_calls == [4, 2]
    envs.close()


def test_vector_env_matches_independent_single_envs():
    n, seed = 3, 7
    vec = SearchQAVectorEnv(n, split="dev")
    singles = [SearchQAEnv(split="dev") for _ in range(n)]
    vobs, _ = vec.reset(seed=seed)
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    assert vobs["question"] == tuple(o["question"] for o in sobs)
    script = [
        [SEARCH.format(q) for q in vobs["question"]],
        [SEARCH.format("capital"), SEARCH.format("currency"), ANSWER.format("Lima")],
    ]
    for actions in script:
        vobs, vr, vterm, vtrunc, vinfo = vec.step(actions)
        for i, env in enumerate(singles):
            if env.episode.done:
                continue
            obs, r, term, trunc, info = env.step(actions[i])
            assert vobs["observation"][i] == obs["observation"]
            assert (vr[i], vterm[i], vtrunc[i]) == (r, term, trunc)
            assert vinfo["retrieved_ids"][i] == info["retrieved_ids"]


def test_autoreset_next_step():
    env = SearchQAVectorEnv(2, split="dev")
    obs, infos = env.reset(seed=3)
    first_question = obs["question"][0]
    obs, rewards, term, trunc, infos = env.step([ANSWER.format("x"), SEARCH.format("peru")])
    assert term.tolist() == [True, False]
    assert infos["_golden_answers"].tolist() == [True, False]
    # next step: sub-env 0 is reset and its action ignored
    obs, rewards, term, trunc, infos = env.step(["ignored", ANSWER.format("x")])
    assert obs["observation"][0] == "" and rewards[0] == 0.0
    assert not term[0] and not trunc[0]
    assert infos["_question_id"][0] and not infos["_question_id"][1]
    assert term[1]
    assert env.envs[0].episode.turns == 0  # a fresh episode, the ignored action not recorded
    assert obs["question"][0] == env.envs[0].episode.example.question
    assert first_question  # the finished episode had a question too


def test_batched_retrieval_failure_is_reported_to_every_searcher():
    counter = CountingRetriever(fail=True)
    env = SearchQAVectorEnv(3, retriever=counter)
    env.reset(seed=0)
    obs, rewards, term, _, infos = env.step(
        [SEARCH.format("a"), ANSWER.format("b"), SEARCH.format("c")]
    )
    assert infos["retrieval_error"][0] == infos["retrieval_error"][2] == "index offline"
    assert "retrieval error" in obs["observation"][0]
    assert not term[0] and not term[2] and term[1]
    assert np.all(rewards[[0, 2]] == 0.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="expected num_envs >= 1, got 0"):
        SearchQAVectorEnv(0)
    env = SearchQAVectorEnv(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected a sequence of 2 actions"):
        env.step(["only one"])
    with pytest.raises(ValueError, match="expected 2 seeds, got 1"):
        env.reset(seed=[1])


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["list"]])
def test_one_bad_action_changes_no_sub_env(bad):
    env = SearchQAVectorEnv(3, split="dev")
    env.reset(seed=0)
    good = SEARCH.format("capital of Peru")
    with pytest.raises(TypeError, match=r"actions\[1\]: expected a str, got .*no sub-env"):
        env.step([good, bad, good])
    assert [e.episode.turns for e in env.envs] == [0, 0, 0]
    # the batch goes through afterwards, each sub-env stepped exactly once
    obs, *_ = env.step([good, good, good])
    assert [e.episode.turns for e in env.envs] == [1, 1, 1]
    assert all(o.lstrip().startswith("<result>") for o in obs["observation"])


def test_step_some_checks_every_index_before_stepping():
    env = SearchQAVectorEnv(2, split="dev")
    env.reset(seed=0)
    good = SEARCH.format("capital of Peru")
    with pytest.raises(IndexError, match="sub-env index 5 out of range"):
        env.step_some({0: good, 5: good})
    with pytest.raises(TypeError, match=r"actions\[1\]"):
        env.step_some({0: good, 1: None})  # type: ignore[dict-item]
    env.step_some({1: ANSWER.format("Lima")})  # sub-env 1's episode ends
    with pytest.raises(RuntimeError, match="sub-env 1: its episode is over"):
        env.step_some({0: good, 1: good})
    assert env.envs[0].episode.turns == 0
    assert set(env.step_some({0: good})) == {0}
    assert env.envs[0].episode.turns == 1
