r"""Varied whole responses for the protocol differential tests (our own generator).

:func:`research_cases` composes responses from fragments that exercise every rule of
ReSearch's reward (well-formed, malformed, nested, Unicode, EOS / no EOS, base and instruct
prompts, tags inside passages, every ``\boxed`` shape). ``benchmarks/fidelity.py`` scores
them with the paper's own code from a checkout and stores the expected rewards in
``tests/fixtures/fidelity_*.jsonl``; the tests compare :func:`score_response` with those.
"""

from __future__ import annotations

import random
from typing import Any

CHAT_PROMPT = (
    "<|im_start|>system\nYou answer with search.<|im_end|>\n"
    "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
)
BASE_PROMPT = "A conversation between User and Assistant. User: {q}. Assistant:"
EOS_TEXTS = ("<|im_end|>", "<|endoftext|>")

GOLDS: list[list[str]] = [
    ["Lima"],
    ["Paris", "City of Paris"],
    ["yes"],
    ["no"],
    ["The Beatles"],
    ["São Paulo", "Sao Paulo"],
    ["U.S.", "United States"],
    ["1,000 km"],
    ["Bogotá"],
    ["an apple"],
    ["noanswer"],
    ["Ｌｉｍａ"],
]

_WRONG = ["Cusco", "London", "maybe", "", "  ", "the", "a an the", "Lima Peru city", "no way"]


def _answer_text(rng: random.Random, golds: list[str]) -> str:
    gold = rng.choice(golds)
    variants = [
        gold,
        gold.upper(),
        gold.lower(),
        f"the {gold}",
        f"{gold}.",
        f"{gold}!!",
        f" {gold} ",
        f"{gold} city",
        gold.replace(" ", "  "),
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in gold),  # full width
        f"«{gold}»",
        f"€the {gold}",
        rng.choice(_WRONG),
        rng.choice(_WRONG),
    ]
    return rng.choice(variants)


def _boxed(rng: random.Random, ans: str) -> str:
    forms = [
        f"\\boxed{{{ans}}}",
        f"\\boxed{{{ans}}}",
        f"\\boxed{{{ans}}}",
        f"The final answer is \\[ \\boxed{{{ans}}} \\]",
        f"\\boxed {{{ans}}}",
        f"\\boxed {ans}$ done",
        f"\\boxed {ans}",
        f"\\boxed{{{ans}",
        f"\\boxed{{\\text{{{ans}}}}}",
        f"\\fbox{{{ans}}}",
        f"\\boxed{{a{{b}}{ans}}}",
        f"\\boxed{{wrong}} then \\boxed{{{ans}}}",
        f"\\boxed{{{ans}}} and \\boxedx{{y}}",
        f"{ans}",
        "\\boxed{}",
        f"$\\boxed{{{ans}}}$",
        f"}}{{ \\boxed{{{ans}}}",
    ]
    return rng.choice(forms)


def _passage_contents(rng: random.Random) -> str:
    bodies = [
        '"Peru"\nLima is the capital of Peru.',
        '"France"\nParis is the capital.',
        '"Tricky"\nThis passage mentions <answer> tags </answer> inside.',
        '"Think"\nA passage with <think> in it.',
        '"Search"\nIt says <search> and </search> here.',
        '"Result"\nNested </result> closer in text.',
        '"Brésil"\nSão Paulo — «grande» ville.',
        '"Boxed"\nA math text with \\boxed{42}.',
    ]
    k = rng.randint(0, 3)
    return " <result>\n" + "\n\n".join(rng.choice(bodies) for _ in range(k)).strip() + "\n</result>"


def _think(rng: random.Random) -> str:
    return rng.choice(
        [
            "<think> I should look this up. </think>",
            "<think>short</think>",
            "<think>\nmulti\nline\n</think>",
            "<think> unclosed think",
            "</think>",
            "<Think> capital </Think>",
            "<think> nested <think> x </think> </think>",
            "",
        ]
    )


def _search(rng: random.Random) -> str:
    query = rng.choice(["capital of Peru", "", "  Paris  ", "São Paulo", "a <b> c"])
    return rng.choice(
        [
            f"<search> {query} </search>",
            f"<search>{query}</search>",
            f"<search> {query}",
            f"{query} </search>",
            f"<search > {query} </search>",
            f"<SEARCH> {query} </SEARCH>",
            f"<search> a <search> {query} </search>",
        ]
    )


def _answer(rng: random.Random, golds: list[str]) -> str:
    inner = _boxed(rng, _answer_text(rng, golds))
    return rng.choice(
        [
            f"<answer> {inner} </answer>",
            f"<answer>{inner}</answer>",
            f"<answer> {inner} </answer>",
            f"<answer> {inner}",
            f"{inner} </answer>",
            f"<answer> x </answer><answer> {inner} </answer>",
            f"</answer> {inner} <answer>",
            f"<Answer> {inner} </Answer>",
            f"<answer > {inner} </answer>",
        ]
    )


def _well_formed(rng: random.Random, golds: list[str]) -> str:
    parts = []
    for _ in range(rng.randint(0, 3)):
        parts.append("<think> I need a fact. </think>")
        parts.append(f"<search> {rng.choice(['capital of Peru', 'Paris'])} </search>")
        parts.append(_passage_contents(rng))
    parts.append("<think> I know it now. </think>")
    ans = rng.choice(golds) if rng.random() < 0.6 else rng.choice(["Cusco", "London"])
    parts.append(f"<answer> The answer is \\boxed{{{ans}}} </answer>")
    return " ".join(parts) if rng.random() < 0.5 else "".join(parts)


def _malformed(rng: random.Random, golds: list[str]) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(0, 3)):
        parts.append(_think(rng))
        if rng.random() < 0.8:
            parts.append(_search(rng))
        if rng.random() < 0.85:
            parts.append(_passage_contents(rng))
    parts.append(_think(rng))
    if rng.random() < 0.9:
        parts.append(_answer(rng, golds))
    tail = rng.choice(
        [
            "",
            "",
            "",
            " Thanks!",
            " <think> after </think>",
            " <search> more </search>",
            " Assistant: again",
            " <|im_start|>assistant\nagain",
            " $",
            " }",
        ]
    )
    parts.append(tail)
    sep = rng.choice(["", " ", "\n"])
    return sep.join(parts)


def research_cases(seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` varied ReSearch cases: ``prompt``, ``response``, ``golden_answers``, ``eos``.

    ``response`` has no EOS text; ``eos`` says whether generation ended at EOS, and
    ``eos_text`` is the tokenizer's EOS text. About a third of the responses are well formed.
    """
    rng = random.Random(seed)
    cases = []
    for i in range(n):
        golds = rng.choice(GOLDS)
        question = rng.choice(["What is the capital of Peru?", "Où est São Paulo?", "Q"])
        chat = rng.random() < 0.7
        prompt = (CHAT_PROMPT if chat else BASE_PROMPT).format(q=question)
        response = _well_formed(rng, golds) if rng.random() < 0.35 else _malformed(rng, golds)
        if rng.random() < 0.3:
            response = " " + response
        cases.append(
            {
                "id": f"{seed}-{i}",
                "prompt": prompt,
                "response": response,
                "golden_answers": golds,
                "eos": rng.random() < 0.8,
                "eos_text": EOS_TEXTS[0] if chat or rng.random() < 0.5 else EOS_TEXTS[1],
            }
        )
    return cases


SEARCHR1_PROMPT = (
    "<|im_start|>user\nAnswer with search. For example, <answer> Beijing </answer>. "
    "Question: {q}\n<|im_end|>\n<|im_start|>assistant\n"
)


def searchr1_cases(seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` varied Search-R1 cases (``<information>`` blocks, plain and boxed answers).

    Most prompts carry one ``<answer>`` example, as Search-R1's does; some carry none, which
    moves the "at least two answers" rule by one.
    """
    rng = random.Random(seed)
    cases = research_cases(seed, n)
    for case in cases:
        response = case["response"].replace("<result>", "<information>")
        response = response.replace("</result>", "</information>")
        if rng.random() < 0.6:
            response = response.replace("\\boxed{", "").replace("The answer is ", "")
        case["response"] = response
        q = rng.choice(["Who?", "What is the capital of Peru?"])
        case["prompt"] = (
            SEARCHR1_PROMPT.format(q=q)
            if rng.random() < 0.85
            else f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        )
        case["eos"] = False
    return cases


def _clean_searchr1(rng: random.Random, golds: list[str]) -> str:
    sep = rng.choice(["\n", " ", "", "\n\n"])
    parts = []
    for _ in range(rng.randint(0, 2)):
        parts.append("<think> I need to look it up. </think>")
        parts.append(f"<search> {rng.choice(['capital of Peru', 'Paris'])} </search>")
        doc = rng.choice(['"Peru"\nLima is the capital.', '"France"\nParis.', '"X"\nnothing'])
        parts.append(f"\n\n<information>Doc 1(Title: {doc})</information>\n\n")
    parts.append("<think> Now I know. </think>")
    parts.append(f"<answer> {_answer_text(rng, golds)} </answer>")
    text = sep.join(parts)
    damage = rng.random()
    if damage < 0.1:
        text = "stray words " + text
    elif damage < 0.2:
        text = text + " trailing"
    elif damage < 0.3:
        text = text.replace("<think> Now I know. </think>", "", 1)
    elif damage < 0.35:
        text = text.replace("</information>", "", 1)
    elif damage < 0.4:
        text = text.replace("<think>", "<think> <search> q </search>", 1)
    return text


def searchr1_format_cases(seed: int, n: int) -> list[dict[str, Any]]:
    """``n`` cases for Search-R1 v0.3's format-aware reward: half clean, half varied."""
    rng = random.Random(seed + 1)
    cases = searchr1_cases(seed, n)
    for case in cases:
        if rng.random() < 0.5:
            case["response"] = _clean_searchr1(rng, case["golden_answers"])
        if rng.random() < 0.1:  # a base-model prompt has no assistant marker
            case["prompt"] = "Answer. For example, <answer> Beijing </answer>. Question: Q\n"
    return cases
