"""SearchQA-v0 run by verifiers' own eval loop (``run_eval``) against a chat server on 127.0.0.1.

Two servers, both real HTTP: a tiny random Llama (mechanics: every episode completes and is
scored as SearchQA-v0 scores the same turns), and a scripted policy that searches and then
answers (the reward path: right answers score 1, wrong 0, and the search results reach the
model as the next user message).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engines, pytest.mark.slow]
vf = pytest.importorskip("verifiers.v1", reason="needs the verifiers extra (verifiers 0.4)")
pytest.importorskip("torch")
pytest.importorskip("fastapi", reason="needs the server extra")

from openai_server import OpenAIServer  # noqa: E402
from research_agents.engines import verifiers_env as ve  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.models import TINY, load_model, load_tokenizer  # noqa: E402
from verifiers.v1.cli.eval.runner import run_eval  # noqa: E402
from verifiers.v1.configs.cli.eval import EvalConfig  # noqa: E402

# The plugin package as `pip install -e environments/searchqa_verifiers` would install it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "environments/searchqa_verifiers"))

QUESTIONS = [
    {"id": "q-peru", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]},
    {"id": "q-chile", "question": "What is the capital of Chile?", "golden_answers": ["Santiago"]},
    {"id": "q-kenya", "question": "What is the capital of Kenya?", "golden_answers": ["Nairobi"]},
]
CORPUS = {"Peru": "Lima", "Chile": "Santiago", "Kenya": "Mombasa"}  # Kenya's passage is wrong


@pytest.fixture(scope="module")
def env_args(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("vf")
    qa = root / "qa.jsonl"
    qa.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return {"dataset": str(qa), "retriever": "closed", "max_turns": 3, "top_k": 1}


@pytest.fixture(scope="module")
def closed_dataset(env_args: dict[str, Any]) -> dict[str, Any]:
    # Closed corpus: each question carries its passages (no index to build).
    path = Path(env_args["dataset"])
    rows = []
    for q in QUESTIONS:
        country = q["question"].rsplit(" ", 1)[-1].rstrip("?")
        context = [{"title": f"{country} — Capital", "text": f"name: {CORPUS[country]}"}]
        rows.append({**q, "metadata": {"context": context}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return env_args


def policy(messages: list[dict[str, Any]]) -> str:
    """Search the question's country, then answer with the capital the passage names."""
    last = messages[-1]["content"]
    if messages[-1]["role"] == "user" and "<result>" not in last:
        country = last.rsplit(" ", 1)[-1].rstrip("?")
        return f"<think>look it up</think> <search>capital of {country}</search>"
    found = re.search(r"name: (\w+)", last)
    return f"<answer>\\boxed{{{found.group(1) if found else 'unknown'}}}</answer>"


def run(url: str, args: dict[str, Any], out: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    monkeypatch.setenv("SEARCHQA_TEST_KEY", "local")
    config = EvalConfig(
        env={
            "taskset": {"id": ve.TASKSET_ID, "env": args},
            "agent": {
                "harness": {"id": ve.TASKSET_ID, "max_tokens": 24},
                "runtime": {"type": "subprocess"},
            },
        },
        model="tiny",
        client={"base_url": f"{url}/v1", "api_key_var": "SEARCHQA_TEST_KEY"},
        sampling={"temperature": 0.0},
        push=False,
        rich=None,
        output_dir=out,
        max_concurrent=2,
    )
    return asyncio.run(run_eval(config))


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def scripted(tokenizer) -> Iterator[OpenAIServer]:  # type: ignore[no-untyped-def]
    with OpenAIServer(HFGenerator(load_model(TINY), tokenizer), chat_policy=policy) as s:
        yield s


def test_scripted_policy_scores_through_verifiers(scripted, closed_dataset, tmp_path, monkeypatch):
    episodes = run(scripted.url, closed_dataset, tmp_path, monkeypatch)
    assert len(episodes) == 3 and all(e.ok for e in episodes), [e.errors for e in episodes]
    by_id = {e.task.data.question_id: e.traces[0] for e in episodes}
    rewards = {q: t.rewards["reward"].value for q, t in by_id.items()}
    assert rewards == {"q-peru": 1.0, "q-chile": 1.0, "q-kenya": 0.0}
    assert by_id["q-peru"].metrics["em"] == 1.0 and by_id["q-kenya"].metrics["f1"] == 0.0
    assert {t.metrics["searches"] for t in by_id.values()} == {1.0}
    # The observation went back to the model as a user turn, stop string restored.
    second_turns = [c for c in scripted.app.state.chats if len(c) == 4]
    assert len(second_turns) == 3
    assert all(c[2]["content"].endswith("</search>") for c in second_turns)
    assert all("<result>" in c[3]["content"] for c in second_turns)
    # verifiers wrote its own record of the run.
    assert len((next(tmp_path.rglob("traces.jsonl"))).read_text().splitlines()) == 3


def test_tiny_model_episodes_through_verifiers(tokenizer, closed_dataset, tmp_path, monkeypatch):
    with OpenAIServer(HFGenerator(load_model(TINY), tokenizer)) as server:
        episodes = run(server.url, closed_dataset, tmp_path, monkeypatch)
        requests = len(server.app.state.chats)
    assert len(episodes) == 3 and all(e.ok for e in episodes), [e.errors for e in episodes]
    turns = 0
    for episode in episodes:
        trace = episode.traces[0]
        played = trace.info["searchqa"]
        assert played["end_reason"] in ("answer", "invalid", "max_turns")
        assert trace.rewards["reward"].value == played["reward"]
        # Every turn was one model call, recorded by verifiers' interception.
        assert len(trace.calls) == played["metrics"]["turns"] >= 1
        turns += int(played["metrics"]["turns"])
    assert requests == turns  # and each reached the model server once


def test_load_environment_and_bad_arguments(closed_dataset):
    env = ve.load_environment(closed_dataset, max_tokens=32)
    tasks = list(env.taskset)
    assert [t.data.question_id for t in tasks] == ["q-peru", "q-chile", "q-kenya"]
    assert tasks[0].data.golden_answers == ["Lima"]
    with pytest.raises(ValueError, match=r"env\.topk: not an argument of SearchQA-v0"):
        ve.load_environment({"topk": 2})


@pytest.mark.parametrize(
    ("text", "reason", "expected"),
    [
        ("<search> x", "stop", "<search> x</search>"),
        ("<answer>\\boxed{a}", "stop", "<answer>\\boxed{a}</answer>"),
        ("<search> x</search>", "stop", "<search> x</search>"),
        ("<search> x", "length", "<search> x"),
        ("no tags", "stop", "no tags"),
    ],
)
def test_restore_stop(text, reason, expected):
    assert ve.restore_stop(text, reason, ["</search>", "</answer>"]) == expected
