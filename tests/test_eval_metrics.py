"""Metrics of the evaluation harness: hand-checked values, aggregation and bootstrap intervals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from research_agents.eval.harness import run_suite
from research_agents.eval.metrics import (
    METRICS,
    bootstrap_ci,
    bootstrap_cis,
    question_values,
    summarise,
)
from research_agents.eval.suites import Suite, Task

from research_env.agent import Observation
from research_env.settings import EnvSettings


def _record(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "question_type": "capital",
        "em": 0.0,
        "f1": 0.0,
        "sub_em": 0.0,
        "format_ok": False,
        "answer_in_retrieval": False,
        "searches": 0,
        "end_reason": "answer",
        "stats": {},
    }
    return base | kw


def test_summary_of_hand_made_records() -> None:
    records = [
        _record(
            em=1.0,
            f1=1.0,
            sub_em=1.0,
            format_ok=True,
            searches=1,
            answer_in_retrieval=True,
            stats={"generated_tokens": 10},
        ),
        _record(
            em=0.0, f1=0.5, sub_em=1.0, format_ok=True, searches=2, stats={"generated_tokens": 20}
        ),
        _record(
            question_type="bridge",
            f1=0.25,
            searches=3,
            end_reason="invalid",
            stats={"generated_tokens": 30},
        ),
        _record(
            question_type="bridge",
            end_reason="max_turns",
            answer_in_retrieval=True,
            stats={"generated_tokens": 40},
        ),
    ]
    s = summarise(records)
    assert s.n == 4
    assert s.metrics["em"] == pytest.approx(0.25)
    assert s.metrics["f1"] == pytest.approx((1 + 0.5 + 0.25) / 4)
    assert s.metrics["sub_em"] == pytest.approx(0.5)
    assert s.metrics["format_ok"] == pytest.approx(0.5)
    assert s.metrics["answered"] == pytest.approx(0.5)
    assert s.metrics["searches"] == pytest.approx(1.5)
    assert s.metrics["tokens"] == pytest.approx(25.0)
    assert s.metrics["answer_in_retrieval"] == pytest.approx(0.5)
    assert s.metrics["judge"] is None and s.ci["judge"] is None
    assert s.by_type == {
        "bridge": {"n": 2.0, "em": 0.0, "f1": 0.125, "searches": 1.5},  # 3 and 0
        "capital": {"n": 2.0, "em": 0.5, "f1": 0.75, "searches": 1.5},  # 1 and 2
    }
    assert s.end_reasons == {"answer": 2, "invalid": 1, "max_turns": 1}
    for name in METRICS:
        if s.metrics[name] is not None:
            low, high = s.ci[name]  # type: ignore[misc]
            assert low <= s.metrics[name] <= high  # type: ignore[operator]


def test_tokens_and_judge_are_all_or_nothing() -> None:
    records = [_record(stats={"generated_tokens": 5}, judge=True), _record(judge=False)]
    s = summarise(records)
    assert s.metrics["tokens"] is None  # one record has no count: no partial mean
    assert s.metrics["judge"] == pytest.approx(0.5)
    assert question_values(_record(judge=None))["judge"] is None


def test_round_trip_through_dict() -> None:
    s = summarise([_record(em=1.0, f1=1.0), _record()])
    from research_agents.eval.metrics import Summary

    assert Summary.from_dict(s.as_dict()) == s


class FixedAnswers:
    """Answers every question with a fixed text per question id, without searching."""

    name = "fixed"

    def __init__(self, answers: Mapping[str, str]) -> None:
        self.answers = answers
        self.current: dict[int, str] = {}

    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        self.current[slot] = self.answers[str(info["question_id"])]

    def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
        return {
            s: f"<think>I know it.</think><answer>\\boxed{{{self.current[s]}}}</answer>"
            for s in observations
        }


def test_hand_checked_scores_through_the_harness(tmp_path: Path) -> None:
    questions = [
        {"id": "q1", "question": "What is the capital of Angola?", "golden_answers": ["Luanda"]},
        {
            "id": "q2",
            "question": "What is the capital of Argentina?",
            "golden_answers": ["Buenos Aires"],
        },
        {"id": "q3", "question": "What is the capital of Austria?", "golden_answers": ["Vienna"]},
        {"id": "q4", "question": "Which is larger?", "golden_answers": ["the United States", "US"]},
    ]
    data = tmp_path / "hand.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in questions))
    suite = Suite(
        "hand",
        "hand-checked",
        (Task("hand", str(data), "test", 0),),
        env=EnvSettings(top_k=2, max_turns=2, template="research_instruct"),
    )
    answers = {
        "q1": "Luanda",  # EM 1, F1 1, sub-EM 1
        # "the city of Buenos Aires" -> "city of buenos aires" (4 tokens) vs "buenos aires" (2):
        # precision 2/4, recall 1 -> F1 2/3; EM 0; the gold is contained -> sub-EM 1.
        "q2": "the city of Buenos Aires",
        "q3": "Paris",  # 0 everywhere
        # "U.S." normalises to "us", which equals the alias "US": EM 1.
        "q4": "U.S.",
    }
    result = run_suite(suite, FixedAnswers(answers), batch_size=3, progress=False)
    task = result.tasks["hand"]
    by_id = {r["question_id"]: r for r in task.records}
    assert [r["question_id"] for r in task.records] == ["q1", "q2", "q3", "q4"]
    assert (by_id["q1"]["em"], by_id["q1"]["f1"], by_id["q1"]["sub_em"]) == (1.0, 1.0, 1.0)
    assert (by_id["q2"]["em"], by_id["q2"]["sub_em"]) == (0.0, 1.0)
    assert by_id["q2"]["f1"] == pytest.approx(2 / 3)
    assert (by_id["q3"]["em"], by_id["q3"]["f1"], by_id["q3"]["sub_em"]) == (0.0, 0.0, 0.0)
    assert by_id["q4"]["em"] == 1.0
    assert all(r["searches"] == 0 and r["format_ok"] for r in task.records)
    m = task.summary.metrics
    assert m["em"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx((1 + 2 / 3 + 0 + 1) / 4)
    assert m["sub_em"] == pytest.approx(0.75)
    assert m["searches"] == 0.0 and m["answered"] == 1.0
    assert m["tokens"] is None  # this agent reports no token counts


# --------------------------------------------------------------------------------- bootstrap
def test_bootstrap_interval_shape_and_determinism() -> None:
    rng = np.random.default_rng(1)
    values = rng.random(80).tolist()
    cis = bootstrap_cis({"a": values, "b": [2 * v for v in values]}, seed=3)
    assert set(cis) == {"a", "b"}
    low, high = cis["a"]
    assert low < float(np.mean(values)) < high
    # Paired resamples: the interval of 2x is exactly twice the interval of x.
    assert cis["b"] == pytest.approx((2 * low, 2 * high))
    assert bootstrap_cis({"a": values}, seed=3)["a"] == cis["a"]
    assert bootstrap_cis({"a": values}, seed=4)["a"] != cis["a"]
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    assert bootstrap_ci([1.0]) == (1.0, 1.0)


def test_bootstrap_interval_narrows_with_more_questions() -> None:
    rng = np.random.default_rng(2)
    widths = []
    for n in (25, 100, 400):
        low, high = bootstrap_ci((rng.random(n) < 0.4).astype(float).tolist())
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # For a proportion the width is about 2 * 1.96 * sqrt(p (1 - p) / n).
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(0.24 / 400), rel=0.25)


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    trials = 300
    for t in range(trials):
        sample = (rng.random(60) < 0.3).astype(float).tolist()
        low, high = bootstrap_ci(sample, n_resamples=400, seed=t)
        hits += low <= 0.3 <= high
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one length"):
        bootstrap_cis({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(ValueError, match="at least one question"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.5)
    with pytest.raises(ValueError, match="at least one record"):
        summarise([])
