r"""Search-R1's rules (PeterGriffinJin/Search-R1), re-implemented from their description.

* **Turns.** Each generated turn is decoded without special tokens and cut after its first
  ``</search>`` if it has one, else after its first ``</answer>`` — ``</search>`` wins even
  when an answer closes earlier. The action is the first ``<search>…</search>`` or
  ``<answer>…</answer>`` pair in the cut text (content stripped); none is an invalid action,
  answered with a corrective message, and the episode goes on.
* **Observation.** ``"\n\n<information>" + docs.strip() + "</information>\n\n"`` with each doc
  ``"Doc {i}(Title: {first line of contents}) {rest of contents}\n"`` — the title keeps the
  quotes of FlashRAG's ``"Title"`` line, and there is no space before ``(Title:``.
* **Limits.** ``max_turns`` turns with search (2 in their scripts), then one final turn in
  which a search is not executed; top-3 passages.
* **Format-aware reward, v0.3** (:func:`score_format`): :func:`valid_sequence` walks the
  tags after the first ``<|im_start|>assistant`` (think → search → information → think … →
  answer, only whitespace between blocks, nothing after the answer); a correct answer scores
  1 with a valid sequence, 0.8 without; a wrong or missing one 0.2 with a valid sequence
  (plus a retrieval bonus, 0 in their scripts, when a golden answer is in an information
  block), 0.1 for a wrong answer without, 0 for no answer without.
* **Reward** (:func:`score`): over the decoded prompt + response, every ``<answer>…</answer>``
  match; with one or none (the prompt's own example is one) the reward is 0, else the last
  match, stripped, scores exact match (1 or 0). The normaliser is SQuAD's, as ReSearch's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from research_env.protocols.research import normalize

__all__ = [
    "cut_turn",
    "extract_answer",
    "parse_turn",
    "render_passages",
    "score",
    "score_format",
    "valid_sequence",
]

_ACTION_RE = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def cut_turn(text: str) -> str:
    """Cut a decoded turn after its first ``</search>``, else after its first ``</answer>``.

    Examples:
        >>> cut_turn("<answer>a</answer><search>b</search> tail")
        '<answer>a</answer><search>b</search>'
    """
    for tag in ("</search>", "</answer>"):
        if tag in text:
            return text.split(tag, 1)[0] + tag
    return text


def parse_turn(text: str) -> tuple[str | None, str]:
    """The ``(action, content)`` of a cut turn: ``("search"|"answer"|None, stripped content)``.

    Examples:
        >>> parse_turn("<think>x</think><search> Peru </search>")
        ('search', 'Peru')
        >>> parse_turn("no tags")
        (None, '')
    """
    match = _ACTION_RE.search(text)
    if match is None:
        return None, ""
    return match.group(1), match.group(2).strip()


def render_passages(contents: Sequence[str]) -> str:
    r"""The observation Search-R1 inserts after a search, from the passages' ``contents``.

    Examples:
        >>> render_passages(['"Peru"\nLima is the capital.'])
        '\n\n<information>Doc 1(Title: "Peru") Lima is the capital.</information>\n\n'
    """
    docs = ""
    for i, content in enumerate(contents, start=1):
        lines = content.split("\n")
        docs += f"Doc {i}(Title: {lines[0]}) {chr(10).join(lines[1:])}\n"
    return f"\n\n<information>{docs.strip()}</information>\n\n"


def extract_answer(response: str, *, prompt: str | None = None) -> str | None:
    """The last ``<answer>`` content of prompt + response, stripped; ``None`` with fewer than 2.

    Args:
        response: The generated turns with the observations interleaved.
        prompt: The decoded prompt; ``None`` assumes one with exactly one
            ``<answer>…</answer>`` example, as Search-R1's prompt has.

    Examples:
        >>> extract_answer("<answer> Lima </answer>")
        'Lima'
        >>> extract_answer("<answer> Lima </answer>", prompt="no example")
    """
    head = "<answer> example </answer>" if prompt is None else prompt
    matches = _ANSWER_RE.findall(head + response)
    return matches[-1].strip() if len(matches) > 1 else None


def score(
    response: str, golden_answers: str | Sequence[str], *, prompt: str | None = None
) -> float:
    """Search-R1's EM reward of one response (see :func:`extract_answer` for the arguments).

    Returns:
        1.0 or 0.0.
    """
    answer = extract_answer(response, prompt=prompt)
    if answer is None:
        return 0.0
    golds = [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)
    pred = normalize(answer)
    return float(any(normalize(g) == pred for g in golds))


_TAG_SPLIT_RE = re.compile(r"(</?(?:think|search|information|answer)>)")
_TAG_RE = re.compile(r"</?(?:think|search|information|answer)>")
_MARKER_RE = re.compile(r"<\|im_start\|>assistant\s*")
_INFO_RE = re.compile(r"<information>(.*?)</information>", re.DOTALL)
# (state, tag) -> next state of Search-R1's sequence check.
_NEXT = {
    ("start", "<think>"): "in_think",
    ("information", "<think>"): "in_think",
    ("in_think", "</think>"): "after_think",
    ("after_think", "<search>"): "in_search",
    ("in_search", "</search>"): "after_search",
    ("after_search", "<information>"): "in_information",
    ("in_information", "</information>"): "information",
    ("after_think", "<answer>"): "in_answer",
    ("in_answer", "</answer>"): "end",
}
_INSIDE = frozenset({"in_think", "in_search", "in_information", "in_answer"})


def valid_sequence(text: str) -> tuple[bool, str]:
    r"""Search-R1 v0.3's sequence check of a decoded prompt + response.

    Examples:
        >>> valid_sequence("<|im_start|>assistant\n<think>a</think><answer> b </answer>")
        (True, 'ok')
        >>> valid_sequence("<|im_start|>assistant\n<answer> b </answer>")[0]
        False
    """
    marker = _MARKER_RE.search(text)
    if marker is None:
        return False, "no assistant marker"
    content = text[marker.end() :]
    for tag in ("think", "search", "information", "answer"):
        if content.count(f"<{tag}>") != content.count(f"</{tag}>"):
            return False, f"unbalanced {tag}"
    state = "start"
    for part in _TAG_SPLIT_RE.split(content):
        if not part.strip():
            continue
        if _TAG_RE.match(part):
            nxt = _NEXT.get((state, part))
            if nxt is None:
                return False, f"unexpected {part} in state {state}"
            state = nxt
        elif state not in _INSIDE:
            return False, f"text in state {state}"
    return (True, "ok") if state == "end" else (False, f"ended in state {state}")


def score_format(
    response: str,
    golden_answers: str | Sequence[str],
    *,
    prompt: str | None = None,
    structure_format_score: float = 0.2,
    final_format_score: float = 0.1,
    retrieval_score: float = 0.0,
) -> float:
    r"""Search-R1 v0.3's format-aware EM reward (their v0.3 scripts' scores are the defaults).

    Args:
        response: The generated turns with the observations interleaved.
        golden_answers: The accepted answers.
        prompt: The decoded prompt; ``None`` assumes an instruct prompt ending with
            ``<|im_start|>assistant\n`` and holding one ``<answer>`` example.
        structure_format_score: Reward of a valid sequence with a wrong answer.
        final_format_score: Reward of an invalid sequence with a wrong answer.
        retrieval_score: Bonus of a valid sequence whose information holds a golden answer.

    Returns:
        The reward.
    """
    head = "<answer> example </answer>\n<|im_start|>assistant\n" if prompt is None else prompt
    text = head + response
    golds = [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)
    valid = valid_sequence(text)[0]
    found = False
    if valid:
        blocks = [normalize(b.strip()) for b in _INFO_RE.findall(text)]
        found = any(normalize(g) in b for b in blocks for g in golds)
    answer = extract_answer(response, prompt=head)
    structure = structure_format_score + (retrieval_score if found else 0.0)
    if answer is None:
        return structure if valid else 0.0
    pred = normalize(answer)
    if any(normalize(g) == pred for g in golds):
        return 1.0 if valid else 1.0 - structure_format_score
    return structure if valid else final_format_score
