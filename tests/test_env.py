import importlib
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import research_env
from research_env.data.types import QAExample
from research_env.env import SearchQAEnv
from research_env.retrieval.base import RetrievalError

PERU = QAExample("q-peru", "What is the capital of Peru?", ["Lima"], {"type": "capital"})
TOY = [
    PERU,
    QAExample("q-chile", "What is the capital of Chile?", ["Santiago"], {"type": "capital"}),
    QAExample("q-area", "Which is larger, Peru or Chile?", ["Peru"], {"type": "comparison"}),
]
SEARCH_PERU = "<think>I should look it up.</think><search>capital of Peru</search>"
ANSWER_LIMA = "<think>The passage says Lima.</think><answer>\\boxed{Lima}</answer>"


@pytest.fixture(scope="module")
def env():
    e = gym.make("SearchQA-v0", dataset=TOY)
    yield e
    e.close()


def test_check_env_passes_with_warnings_as_errors():
    env = gym.make("SearchQA-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_issue_example_search_then_answer(env):
    obs, info = env.reset(seed=0, options={"question_id": "q-peru"})
    assert obs["observation"] == ""
    assert "What is the capital of Peru?" in obs["prompt"]
    assert info["question_id"] == "q-peru"
    obs, r, terminated, truncated, info = env.step(SEARCH_PERU)
    assert (r, terminated, truncated) == (0.0, False, False)
    text = obs["observation"]
    assert "<result>" in text and "</result>" in text
    assert "Lima" in text  # a real Factbook passage, not a canned string
    assert info["action_type"] == "search" and info["query"] == "capital of Peru"
    assert len(info["retrieved_ids"]) == 5
    assert info["reward_components"]["answer_in_retrieval"] is True
    obs, r, terminated, truncated, info = env.step(ANSWER_LIMA)
    assert (r, terminated, truncated) == (1.0, True, False)
    assert info["prediction"] == "Lima"
    assert info["reward_components"]["em"] == 1.0
    assert info["reward_components"]["format_ok"] is True
    assert info["end_reason"] == "answer" and info["num_searches"] == 1
    assert isinstance(terminated, bool) and isinstance(truncated, bool)


def test_wrong_answer_gets_zero_and_f1_preset_gives_partial_credit():
    for reward, expected in (("em", 0.0), ("f1", 2 / 3)):
        env = gym.make("SearchQA-v0", dataset=TOY, reward=reward)
        env.reset(options={"question_id": "q-peru"})
        _, r, term, _, info = env.step("<answer>\\boxed{Lima Peru}</answer>")
        assert term and r == pytest.approx(expected)
        assert info["reward_components"]["f1"] == pytest.approx(2 / 3)


def test_research_reward_needs_valid_format():
    env = gym.make("SearchQA-v0", dataset=TOY, reward="research")
    env.reset(options={"question_id": "q-peru"})
    _, r, *_ = env.step("<answer>\\boxed{Lima}</answer>")  # no <think>: invalid format
    assert r == 0.0
    env.reset(options={"question_id": "q-peru"})
    env.step(SEARCH_PERU)
    _, r, *_ = env.step("<think>hmm</think><answer>\\boxed{Cusco}</answer>")
    assert r == pytest.approx(0.1)  # valid format, wrong answer


def test_invalid_action_terminates_or_corrects():
    env = gym.make("SearchQA-v0", dataset=TOY)
    env.reset(seed=1)
    _, r, term, trunc, info = env.step("I think the answer is Lima.")
    assert (r, term, trunc) == (0.0, True, False)
    assert info["action_type"] == "invalid" and info["invalid_reason"]
    assert info["end_reason"] == "invalid"
    env = gym.make("SearchQA-v0", dataset=TOY, invalid_action="correct")
    env.reset(seed=1)
    obs, r, term, trunc, info = env.step("I think the answer is Lima.")
    assert (r, term, trunc) == (0.0, False, False)
    assert "invalid" in obs["observation"].lower()


def test_max_turns_truncates_and_answer_only_last_turn():
    env = gym.make("SearchQA-v0", dataset=TOY, max_turns=2)
    env.reset(options={"index": 0})
    assert env.step(SEARCH_PERU)[2:4] == (False, False)
    obs, r, term, trunc, info = env.step(SEARCH_PERU)
    assert (r, term, trunc) == (0.0, False, True)
    assert info["end_reason"] == "max_turns"
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(ANSWER_LIMA)

    env = gym.make("SearchQA-v0", dataset=TOY, max_turns=2, last_turn="answer_only")
    env.reset(options={"index": 0})
    obs, *_ = env.step(SEARCH_PERU)
    assert "answer" in obs["observation"].lower().split("</result>")[-1]
    _, _, term, trunc, info = env.step(SEARCH_PERU)
    assert (term, trunc) == (True, False)
    assert info["invalid_reason"] == "search_on_last_turn"


def test_render_ansi_returns_transcript():
    env = gym.make("SearchQA-v0", dataset=TOY, render_mode="ansi")
    env.reset(options={"question_id": "q-peru"})
    env.step(SEARCH_PERU)
    env.step(ANSWER_LIMA)
    text = env.render()
    assert text.index("capital of Peru") < text.index("<result>") < text.index("\\boxed{Lima}")


class FailingRetriever:
    calls = 0

    def search(self, query, k):
        self.calls += 1
        raise RetrievalError("connection refused by http://127.0.0.1:1")

    def search_batch(self, queries, k):
        return [self.search(q, k) for q in queries]


def test_retrieval_error_is_reported_not_faked():
    env = gym.make("SearchQA-v0", dataset=TOY, retriever=FailingRetriever())
    env.reset(options={"index": 0})
    obs, _, term, trunc, info = env.step(SEARCH_PERU)
    assert not term and not trunc
    assert info["retrieval_error"] == "connection refused by http://127.0.0.1:1"
    assert info["retrieved_ids"] == []
    assert "error" in obs["observation"].lower()
    _, _, term, _, info = env.step(ANSWER_LIMA)
    assert term and info["retrieval_failed"] is True


def _run(env, seed):
    """20 episodes of scripted actions; returns everything observable."""
    actions = [SEARCH_PERU, "<search>area of Chile</search>", ANSWER_LIMA, "garbage", ""]
    trace = []
    obs, info = env.reset(seed=seed)
    trace.append((obs, info))
    for i in range(20):
        done = False
        j = i
        while not done:
            step = env.step(actions[j % len(actions)])
            trace.append(step)
            done = step[2] or step[3]
            j += 1
        trace.append(env.reset())
    return trace


def test_determinism_same_seed_same_everything():
    a = gym.make("SearchQA-v0", split="dev")
    b = gym.make("SearchQA-v0", split="dev")
    assert _run(a, seed=42) == _run(b, seed=42)
    assert _run(a, seed=42) != _run(a, seed=43)


def test_reset_options_are_validated(env):
    with pytest.raises(ValueError, match="no question with id 'nope'"):
        env.reset(options={"question_id": "nope"})
    with pytest.raises(ValueError, match=r"options\['index'\]: expected an int in \[0, 3\), got 7"):
        env.reset(options={"index": 7})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"idx": 0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_k": 0}, "expected top_k >= 1, got 0"),
        ({"max_turns": 0}, "expected max_turns >= 1, got 0"),
        ({"split": "validation"}, "expected split in"),
        ({"reward": "nope"}, "unknown reward preset 'nope'"),
        ({"retriever": "tfidf"}, "expected retriever 'bm25'"),
        ({"invalid_action": "ignore"}, "expected invalid_action"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchQAEnv(**kwargs)


@pytest.fixture(scope="module")
def shared_env():
    return gym.make("SearchQA-v0", dataset=TOY).unwrapped


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    actions=st.lists(
        st.one_of(
            st.text(),
            st.text(alphabet=st.characters(codec="utf-8"), min_size=1).map(lambda s: s * 5000),
            st.builds(lambda q: f"<search>{q}</search>", st.text()),
            st.builds(lambda a: f"<answer>\\boxed{{{a}}}</answer>", st.text()),
            st.sampled_from(["<search>", "</answer>", "\x00" * 100, "<search><answer>x</answer>"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_unicode_action_is_legal(shared_env, actions):
    env = shared_env
    obs, _ = env.reset(seed=0)
    for action in actions:
        obs, r, term, trunc, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert isinstance(r, float) and 0.0 <= r <= 1.0
        assert {"em", "f1", "format_ok"} <= set(info["reward_components"])
        if term or trunc:
            obs, _ = env.reset()


def test_registration_is_repeat_safe_and_namespaced():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(research_env)
        importlib.reload(research_env)
    assert gym.make("research_env:SearchQA-v0", dataset=TOY).unwrapped.top_k == 5


def test_env_package_imports_without_torch():
    code = (
        "import sys, gymnasium as gym, research_env;"
        "env = gym.make('SearchQA-v0'); env.reset(seed=0);"
        "env.step('<search>capital of Peru</search>');"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_env_card_in_docs_matches_docstring():
    from pathlib import Path

    from research_env.envcard import env_card

    docs = Path(__file__).resolve().parent.parent / "docs" / "env.md"
    assert docs.read_text(encoding="utf-8") == env_card(), "run `make docs` to refresh docs/env.md"


def test_support_recall_counts_each_hop_of_a_bridge_question():
    """One search finds the first hop's passage; the second, for the bridge entity, the other."""
    e = gym.make("SearchQA-v0", split="train", max_turns=4, top_k=3)
    try:
        _, info = e.reset(seed=0)
        split = e.unwrapped.examples
        index = next(
            i
            for i, ex in enumerate(split)
            if ex.metadata.get("template") == "border-capital"
            and ex.metadata["bridge_keys"][0]["key"] == "Azerbaijan"
        )
        _, info = e.reset(options={"index": index})
        _, _, _, _, info = e.step("<search>Azerbaijan land boundaries</search>")
        assert info["reward_components"]["support_recall"] == pytest.approx(0.5)
        assert info["reward_components"]["bridge_recall"] == 0.0  # the question names Azerbaijan
        _, _, _, _, info = e.step("<search>Armenia capital</search>")
        assert info["reward_components"]["support_recall"] == pytest.approx(1.0)
        assert info["reward_components"]["bridge_recall"] == 1.0
        assert info["reward_components"]["hops"] == 2
        _, _, _, _, info = e.step("<answer>Yerevan</answer>")
        assert info["reward_components"]["em"] == 1.0
        assert info["reward_components"]["support_recall"] == pytest.approx(1.0)
    finally:
        e.close()


def test_support_recall_is_none_without_supporting_passages(env):
    env.reset(options={"question_id": "q-peru"})
    _, _, _, _, info = env.step(SEARCH_PERU)
    assert info["reward_components"]["support_recall"] is None
    assert info["reward_components"]["bridge_recall"] is None
    assert info["reward_components"]["hops"] is None


def test_hops_is_the_questions_hop_count_and_one_per_supporting_passage():
    """Factbook gives both: 1 for single-hop and reverse, 2 for bridge and comparison, 3 for
    three-hop (tests/test_factbook.py checks the counts per type)."""
    e = gym.make("SearchQA-v0", split="train", max_turns=4, top_k=3)
    try:
        seen: dict[str, int] = {}
        for index, ex in enumerate(e.unwrapped.examples):
            kind = ex.metadata.get("type")
            if kind in seen:
                continue
            e.reset(options={"index": index})
            _, _, _, _, info = e.step("<answer>none</answer>")
            seen[kind] = info["reward_components"]["hops"]
            assert seen[kind] == ex.metadata["hops"] == len(ex.metadata["support"]), ex.id
        assert sorted(set(seen.values())) == [1, 2, 3] and len(seen) == 7
    finally:
        e.close()


def test_hops_falls_back_to_the_supporting_passages() -> None:
    """Without ``metadata["hops"]`` the count is the supporting passages listed, else None."""
    from research_env.data.types import QAExample
    from research_env.episode import Episode

    def hops(**meta: object) -> int | None:
        return Episode(example=QAExample("q", "Q?", ["a"], metadata=meta), prompt="").hops

    assert hops(support=["x/1", "y/2"]) == 2
    assert hops(hops=3, support=["x/1"]) == 3
    assert hops() is None and hops(support=[]) is None and hops(hops=True) is None


def test_bridge_recall_counts_the_entities_the_question_does_not_name():
    """A capital-currency bridge hides its country; a later query naming it, in any case, counts."""
    e = gym.make("SearchQA-v0", split="train", max_turns=4, top_k=3)
    try:
        split = e.unwrapped.examples
        index = next(
            i for i, ex in enumerate(split) if ex.metadata.get("template") == "capital-currency"
        )
        example = split[index]
        (country,) = example.metadata["entities"]
        assert country.lower() not in example.question.lower()
        e.reset(options={"index": index})
        _, _, _, _, info = e.step(f"<search>{example.question}</search>")
        assert info["reward_components"]["bridge_recall"] == 0.0
        _, _, _, _, info = e.step(f"<search>{country.upper()} capital</search>")
        assert info["reward_components"]["bridge_recall"] == 1.0
        _, _, _, _, info = e.step("<answer>none</answer>")
        assert info["reward_components"]["bridge_recall"] == 1.0  # kept to the end
    finally:
        e.close()
