"""docs/agents.md: its code blocks run, and do what the page says they do.

A block preceded by ``<!-- doctest: run -->`` is executed as it is. The TRL recipe, marked
``<!-- doctest: construct -->``, is executed up to (not including) ``trainer.train()``, with the
tiny random model in place of SmolLM2, so the trainer it builds is real but no training runs
(tests/test_trl_interop.py trains).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from research_env.agent import Agent, play
from research_env.env import SearchQAEnv

DOC = Path(__file__).resolve().parent.parent / "docs" / "agents.md"
_BLOCK = re.compile(r"<!-- doctest: (?P<kind>\w+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def _blocks(kind: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every block of ``kind``."""
    text = DOC.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start("code")) + 1, m["code"])
        for m in _BLOCK.finditer(text)
        if m["kind"] == kind
    ]


def _block(kind: str, marker: str) -> tuple[int, str]:
    """The one block of ``kind`` that contains ``marker`` (other sections may add blocks)."""
    found = [(line, code) for line, code in _blocks(kind) if marker in code]
    assert len(found) == 1, f"expected one {kind!r} block containing {marker!r} in {DOC}"
    return found[0]


def _run(line: int, code: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Execute a block so that tracebacks point at docs/agents.md:line."""
    ns: dict[str, Any] = {"__name__": "agents_doc"} if namespace is None else namespace
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), ns)
    return ns


def test_the_page_walks_through_the_four_routes() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    for route in (
        "1. A custom agent",
        "2. Stable-Baselines3",
        "3. TRL's GRPOTrainer",
        "4. Multi-process training",
        "Wrappers",
    ):
        assert route in headings
    _block("run", "class CapitalLookup")
    _block("run", "ChatMessages(")
    _block("construct", "rollout_func=rollout")


def test_custom_agent_example_plays_episodes(capsys: pytest.CaptureFixture[str]) -> None:
    line, code = _block("run", "class CapitalLookup")
    agent_class = code[code.index("class CapitalLookup") : code.index("\n\n\nenv =")]
    assert len(agent_class.strip().splitlines()) <= 25  # "a 20-line custom agent"
    ns = _run(line, code)
    records, capitals = ns["records"], ns["capitals"]
    printed = capsys.readouterr().out.strip()
    # the page quotes what the example prints
    assert f"It prints `{printed}`" in DOC.read_text(encoding="utf-8")
    assert len(records) == len(capitals) >= 10
    assert [r.index for r in records] == capitals
    assert all(r.question_type == "capital" and r.searches == 1 for r in records)
    assert all(r.end_reason == "answer" and r.format_ok for r in records)
    em = sum(r.em for r in records) / len(records)
    assert em >= 0.8 and printed == f"EM {em:.2f} on {len(records)} questions"
    # every fact came from the env: the answer is in the passages the agent was shown
    assert all(r.answer_in_retrieval for r in records if r.em)
    # the protocol holds, and a single env gives the same records as the vector env
    agent = ns["CapitalLookup"]()
    assert isinstance(agent, Agent)
    single = play(agent, SearchQAEnv(split="dev"), capitals)
    assert [r.as_dict() for r in single] == [r.as_dict() for r in records]


def test_wrappers_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    line, code = _block("run", "ChatMessages(")
    ns = _run(line, code)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "['system', 'user']"
    assert out[1].startswith("[' <result>', 'Doc 1 (Title: ")
    assert out[2] == "1 answer 1.0"
    assert ns["env"].episode_count == 1


def test_trl_recipe_builds_a_real_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    trl = pytest.importorskip("trl")
    from research_agents.trl_interop import SearchQARollout

    line, code = _block("construct", "rollout_func=rollout")
    assert code.rstrip().endswith("trainer.train()")
    assert code.count('"smollm2"') == 2
    code = code.rstrip().removesuffix("trainer.train()").replace('"smollm2"', '"tiny"')
    monkeypatch.chdir(tmp_path)  # output_dir is relative
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    ns = _run(line, code)
    trainer, rollout = ns["trainer"], ns["rollout"]
    assert isinstance(trainer, trl.GRPOTrainer) and isinstance(rollout, SearchQARollout)
    assert trainer.rollout_func is rollout
    assert trainer.reward_func_names == ["searchqa_reward"]
    types = {
        rollout.env.examples[i].metadata["type"] for i in trainer.train_dataset["question_index"]
    }
    assert types == {"capital", "currency"}
    assert trainer.args.num_generations == 4 and trainer.args.max_completion_length == 400
