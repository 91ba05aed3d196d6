"""Protocols: the papers' reward rules against their own code's scores, and through the env.

``tests/fixtures/fidelity_{research,searchr1}.jsonl`` hold varied responses with the rewards
that ReSearch's and Search-R1's own reward code gave them (``benchmarks/fidelity.py``, run
against the papers' checkouts); the generator is ``tests/fidelity_cases.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import research_env  # noqa: F401  (registers SearchQA-v0)
from research_env.data.types import Passage, QAExample
from research_env.protocols import (
    PROTOCOLS,
    get_protocol,
    research,
    score_response,
    searchr1,
    trl_reward,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _cases(name: str) -> list[dict[str, Any]]:
    with (FIXTURES / f"fidelity_{name}.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("name", ["research", "searchr1", "searchr1_format"])
def test_score_response_agrees_with_the_papers_code(name: str) -> None:
    cases = _cases(name)
    assert len(cases) >= 500
    misses = [
        c["id"]
        for c in cases
        if score_response(
            name,
            c["response"],
            c["golden_answers"],
            eos=c["eos"],
            eos_text=c["eos_text"],
            prompt=c["prompt"],
        )
        != pytest.approx(c["expected"], abs=1e-12)
    ]
    assert not misses, f"{len(misses)} of {len(cases)} disagree: {misses[:10]}"


def test_fixture_is_varied() -> None:
    cases = _cases("research")
    values = [c["expected"] for c in cases]
    well = [c for c in cases if research.check_format(c["response"])[0]]
    assert len(well) >= 100  # well-formed ones, all of which must agree (above)
    assert values.count(0.1) >= 20 and values.count(1.0) >= 20 and values.count(0.0) >= 200
    assert any(0 < v < 1 and v != 0.1 for v in values)  # partial F1
    assert {c["eos"] for c in cases} == {True, False}
    assert any("Assistant:" in c["prompt"] and "<|im_start|>" not in c["prompt"] for c in cases)


@pytest.mark.parametrize(
    ("response", "eos", "expected"),
    [
        # text after </answer> is part of the response, and allowed
        ("<think>a</think><answer>\\boxed{Lima}</answer> bye", True, 1.0),
        # no EOS: over length
        ("<think>a</think><answer>\\boxed{Lima}</answer>", False, 0.0),
        # wrong answer, good format
        ("<think>a</think><answer>\\boxed{Cusco}</answer>", True, 0.1),
        # nesting is allowed: only counts and order are checked
        (
            "<think><search>q</search> <result>\nx\n</result></think>"
            "<answer>\\boxed{Lima}</answer>",
            True,
            1.0,
        ),
        # tags are case-sensitive: <Think> is not a think tag
        ("<Think>a</Think><answer>\\boxed{Lima}</answer>", True, 0.0),
        # a tag inside inserted passages counts
        (
            "<think>a</think><search>q</search> <result>\n<answer>\n</result>"
            "<answer>\\boxed{Lima}</answer>",
            True,
            0.0,
        ),
        # an unbalanced box is an error, not 0.1
        ("<think>a</think><answer>\\boxed{Lima</answer>}", True, 0.0),
        # "\boxed " with a space: the text after it, up to "$"
        ("<think>a</think><answer>\\boxed{x} \\boxed Lima$ end</answer>", True, 1.0),
        # a response containing the handover marker is cut there
        ("<think>a</think><answer>\\boxed{Lima}</answer><|im_start|>assistant\nx", True, 0.0),
    ],
)
def test_research_rules(response: str, eos: bool, expected: float) -> None:
    assert score_response("research", response, ["Lima"], eos=eos) == pytest.approx(expected)


def test_text_unwrapping_is_not_done() -> None:
    # \text{Lima} normalises to "textlima" (backslash and braces are punctuation): F1 0 -> 0.1
    r = "<think>a</think><answer>\\boxed{\\text{Lima}}</answer>"
    assert research.extract_answer(r) == "\\text{Lima}"
    assert score_response("research", r, ["Lima"], eos=True) == pytest.approx(0.1)


def test_research_normaliser_has_no_unicode_folding() -> None:
    assert research.normalize("Ｌｉｍａ") != research.normalize("Lima")
    assert research.f1("", "") == 0.0
    assert research.f1("yes", "yes sir") == 0.0


def test_searchr1_needs_two_answer_matches() -> None:
    r = "<think>x</think><answer> Lima </answer>"
    assert score_response("searchr1", r, ["Lima"], eos=False) == 1.0  # prompt has an example
    assert score_response("searchr1", r, ["Lima"], eos=False, prompt="no example") == 0.0
    assert searchr1.cut_turn("<answer>a</answer> <search>b</search> c") == (
        "<answer>a</answer> <search>b</search>"
    )


def test_trl_reward_function() -> None:
    f = trl_reward("research")
    good = "<think>a</think><answer>\\boxed{Lima}</answer>"
    out = f(
        prompts=["<|im_start|>assistant\n"] * 3,
        completions=[good + "<|im_end|>", good, [{"role": "assistant", "content": good}]],
        golden_answers=[["Lima"]] * 3,
    )
    assert out == [1.0, 0.0, 0.0]
    assert f.__name__ == "research_reward"


def test_unknown_protocol_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'reserach'; expected one of"):
        get_protocol("reserach")


# ------------------------------------------------------------------- through the env
class _Fixed:
    """A real in-memory retriever over a fixed list (answers every query the same way)."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int) -> list[Passage]:
        return self.passages[:k]

    def search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        return [self.search(q, k) for q in queries]


_PASSAGES = [
    Passage("p1", "Peru", "Lima is the capital of Peru."),
    Passage("p2", "Tricky", "A passage with <answer> in it."),
    Passage("p3", "Chile", "Santiago."),
]
_DATA = [QAExample("q1", "What is the capital of Peru?", ["Lima"])]


def _env(protocol: str, **kw: Any) -> Any:
    return gym.make(
        "SearchQA-v0", dataset=_DATA, retriever=_Fixed(_PASSAGES), protocol=protocol, **kw
    ).unwrapped


def test_protocol_sets_its_fields_and_kwargs_override() -> None:
    env = _env("research")
    assert (env.top_k, env.max_turns, env.protocol.stop_strings) == (5, 64, ("</search>",))
    assert _env("research", top_k=2).top_k == 2
    env = _env("searchr1")
    assert (env.top_k, env.max_turns, env.invalid_action, env.last_turn) == (
        3,
        3,
        "correct",
        "no_search",
    )
    ours = _env("ours")
    assert (ours.top_k, ours.max_turns, ours.invalid_action) == (5, 4, "terminate")


def test_research_observation_is_the_papers_block() -> None:
    env = _env("research", top_k=2)
    env.reset(seed=0)
    obs, *_ = env.step("<think>t</think><search> Peru </search>")
    assert obs["observation"] == (
        ' <result>\n"Peru"\nLima is the capital of Peru.\n\n'
        '"Tricky"\nA passage with <answer> in it.\n</result>'
    )


@pytest.mark.parametrize(
    "segments",
    [
        [
            "<think>t</think><search> Peru </search>",
            "<think>u</think><answer>\\boxed{Lima}</answer> done<|im_end|>",
        ],
        [
            "<think>t</think><search> Peru </search>",
            "<think>u</think><answer>\\boxed{Lima}</answer>",
        ],
        ["<think>t</think><answer>\\boxed{Cusco}</answer><|im_end|>"],
        [
            "<think>t</think><search> a </search> junk after the stop",
            "<answer>\\boxed{Lima}</answer><|im_end|>",
        ],
        [
            "<think>t</think><search></search>",
            "<think>u</think><answer>\\boxed{Lima}</answer><|im_end|>",
        ],
    ],
)
def test_env_reward_equals_score_response(segments: list[str]) -> None:
    for top_k in (1, 2):  # top_k 2 puts an <answer> tag inside the result: bad format
        env = _env("research", top_k=top_k)
        env.reset(seed=0)
        reward, done = 0.0, False
        for seg in segments:
            _, reward, terminated, truncated, _info = env.step(seg)
            done = terminated or truncated
            if done:
                break
        assert done
        ep = env.episode
        eos = segments[-1].endswith("<|im_end|>")
        expected = score_response("research", ep.response, ["Lima"], eos=eos, prompt=ep.prompt)
        assert reward == expected
        assert "<|im_end|>" not in ep.response and "junk" not in ep.response


def test_searchr1_episode_final_turn_runs_no_search() -> None:
    env = _env("searchr1")
    env.reset(seed=0)
    obs, _r, _te, _tr, _info = env.step("<think>x</think><search> Peru </search>")
    assert obs["observation"].startswith('\n\n<information>Doc 1(Title: "Peru") Lima')
    obs, r, te, _tr, info = env.step("no action here")
    assert not te and "invalid" in obs["observation"]
    obs, r, te, _tr, info = env.step("<search> more </search>")
    assert te and info["end_reason"] == "final_turn" and info["retrieved_ids"] == []
    assert r == score_response(
        "searchr1", env.episode.response, ["Lima"], eos=False, prompt=env.episode.prompt
    )


def test_every_protocol_has_a_fidelity_row() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "fidelity.md").read_text(encoding="utf-8")
    for name in PROTOCOLS:
        assert f"`{name}`" in doc


# ------------------------------------------------------------------- prompt files
_CHECKOUT_STYLE = '''
base_template = """Our own words. \\
Answer in \\\\boxed{{}}. \\
User: {prompt}. Assistant:"""

system_template = """Be helpful and put answers in \\\\boxed{}."""


def make_prefix(dp, template_type):
    question = dp["question"]
    if template_type == "base":
        prefix = f"""Use <search>. For example, <answer> X </answer>. Question: {question}\\n"""
    else:
        raise NotImplementedError
    return prefix

import os
os.system("touch SHOULD_NOT_EXIST")
'''


def test_prompt_constants_are_read_without_running_the_file(tmp_path: Path) -> None:
    from research_env.prompt_files import PromptFileError, load_template_constants
    from research_env.templates import PromptTemplate

    src = tmp_path / "template.py"
    src.write_text(_CHECKOUT_STYLE, encoding="utf-8")
    constants = load_template_constants(src)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()
    assert constants["base_template"] == (
        "Our own words. Answer in \\boxed{}. User: {question}. Assistant:"
    )
    base = PromptTemplate.from_file(src, constant="base_template")
    assert base.render("Q?") == "Our own words. Answer in \\boxed{}. User: Q?. Assistant:"
    chat = PromptTemplate.from_file(src, constant="system_template")
    assert chat.system_prompt == "Be helpful and put answers in \\boxed{}."
    assert chat.messages("Q?")[1] == {"role": "user", "content": "Q?"}
    sr1 = PromptTemplate.from_file(src, constant="make_prefix.prefix", style="searchr1")
    assert sr1.render("Q?").endswith("Question: Q?\n") and sr1.observation_tag == "information"
    with pytest.raises(PromptFileError, match="no string constant 'nope'; it has: base_template"):
        PromptTemplate.from_file(src, constant="nope")
    txt = tmp_path / "prompt.txt"
    txt.write_text("Plain {question} here", encoding="utf-8")
    assert PromptTemplate.from_file(txt).render("Q") == "Plain Q here"


def test_searchr1_format_reward_table() -> None:
    head = "<|im_start|>user\nFor example <answer> B </answer><|im_end|>\n<|im_start|>assistant\n"
    good = "<think> a </think>\n<answer> Lima </answer>"
    wrong = "<think> a </think>\n<answer> Cusco </answer>"
    for response, expected in [
        (good, 1.0),
        ("stray " + good, 0.8),
        (wrong, 0.2),
        ("stray " + wrong, 0.1),
        ("<think> a </think>", 0.0),
    ]:
        got = score_response("searchr1_format", response, ["Lima"], eos=False, prompt=head)
        assert got == pytest.approx(expected), response


def test_searchr1_format_through_the_env() -> None:
    env = _env("searchr1_format", top_k=1)  # the second passage holds a stray <answer>
    env.reset(seed=0)
    env.step("<think> x </think>\n<search> Peru </search>")
    _, reward, terminated, _, info = env.step("<think> y </think>\n<answer> Lima </answer>")
    assert terminated and info["reward_components"]["format_ok"] is False  # no chat marker
    assert reward == score_response(
        "searchr1_format", env.episode.response, ["Lima"], eos=False, prompt=env.episode.prompt
    )
    assert reward == pytest.approx(0.8)


@pytest.mark.slow
def test_smollm2_plays_the_research_protocol_to_eos() -> None:
    """A real model's turns end at EOS and the env scores the whole response (ReSearch)."""
    pytest.importorskip("torch")
    from research_agents.baselines.policy_agent import ResearchPolicyAgent
    from research_agents.generation.hf import HFGenerator
    from research_agents.models import load_model, load_tokenizer

    from research_env.agent import play
    from research_env.settings import TurnSettings

    tok = load_tokenizer("smollm2")
    model = load_model("smollm2")
    env = gym.make(
        "SearchQA-v0", protocol="research", split="dev", tokenizer=tok, max_turns=4
    ).unwrapped
    agent = ResearchPolicyAgent(
        HFGenerator(model, tok),
        tok,
        env,
        turns=TurnSettings(max_new_tokens=96, max_response_tokens=600),
    )
    records = play(agent, env, [0, 5])
    for record in records:
        assert record.end_reason in ("eos", "over_length", "max_turns")
        if record.end_reason == "eos":
            assert record.actions[-1].endswith(tok.eos_token)
    assert any(r.end_reason == "eos" for r in records)
