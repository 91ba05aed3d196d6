r"""ReSearch's rules (Agent-RL/ReCall at commit 3b2fd14), re-implemented from their description.

Everything here is pure text processing; :mod:`research_env.protocols` wires it into a
protocol. The behaviour matches ReSearch's reward code and rollout point for point
(``docs/fidelity.md`` lists each rule with its source line); where a rule looks odd, it is
ReSearch's, kept on purpose:

* **Rollout.** Generation stops only at ``</search>`` or at the end-of-sequence token. Text
  after ``</answer>`` is part of the response. After a search the block
  ``" <result>\n" + docs + "\n</result>"`` is inserted, ``docs`` being the passages' FlashRAG
  ``contents`` (``"Title"\ntext``) joined by a blank line, stripped, unnumbered, unescaped.
* **Format** (:func:`check_format`) counts tags over the whole response, inserted results
  included: equal, non-zero counts of ``<think>`` and ``</think>``; exactly one ``<answer>`` and
  one ``</answer>``; every ``<search>`` followed by ``</search>``, ``<result>``, ``</result>`` in
  that order; the answer span contains ``\boxed{`` and ``}``. Tags are exact and
  case-sensitive; nesting is not checked.
* **Answer** (:func:`extract_answer`): the first ``<answer>…</answer>``, then the last
  ``\boxed`` group in it. A ``"\boxed "`` (with a space) anywhere in it takes precedence: the
  answer is the text after its last occurrence, up to a ``$``. An unbalanced box is an error.
* **Score** (:func:`score`): 0 for a bad format, for a response that did not end with EOS
  ("over length"), or a box error; else token F1 (:func:`f1`) if positive, else 0.1.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "BASE_MARKER",
    "CHAT_MARKER",
    "BoxError",
    "check_format",
    "extract_answer",
    "f1",
    "normalize",
    "render_passages",
    "response_from_solution",
    "score",
    "search_query",
]

CHAT_MARKER = "<|im_start|>assistant\n"
"""Where an instruct (ChatML) prompt hands over to the response."""

BASE_MARKER = "Assistant:"
"""Where a base-model prompt hands over to the response."""

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLE_RE = re.compile(r"\b(?:a|an|the)\b")
_SPECIAL = frozenset({"yes", "no", "noanswer"})


class BoxError(ValueError):
    r"""The answer has no well-formed ``\\boxed{...}`` group."""


# ---------------------------------------------------------------- normalisation and F1
def normalize(text: str) -> str:
    """ReSearch's (SQuAD's) normalisation: lower-case, drop ASCII punctuation, drop articles.

    Articles are matched at regex word boundaries (so ``"€the"`` loses its ``the``), and
    whitespace runs collapse to one space. No Unicode folding.

    Examples:
        >>> normalize("The  Lima!")
        'lima'
        >>> normalize("Ｌｉｍａ")
        'ｌｉｍａ'
    """
    lowered = text.lower()
    kept = "".join(ch for ch in lowered if ch not in _ASCII_PUNCT)
    return " ".join(_ARTICLE_RE.sub(" ", kept).split())


def f1(prediction: str, golden_answers: str | Sequence[str]) -> float:
    """Token F1, the best over golden answers, with ReSearch's special cases.

    A golden answer is skipped (scores 0) when either side is ``yes``/``no``/``noanswer`` and
    the two differ, and when no token is shared — so two empty strings score 0.

    Examples:
        >>> f1("Lima city", "Lima")
        0.6666666666666666
        >>> f1("", "")
        0.0
    """
    golds = [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)
    pred = normalize(prediction)
    pred_tokens = pred.split()
    best = 0.0
    for gold_text in golds:
        gold = normalize(gold_text)
        if (pred in _SPECIAL or gold in _SPECIAL) and pred != gold:
            continue
        gold_tokens = gold.split()
        same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if same == 0:
            continue
        precision, recall = same / len(pred_tokens), same / len(gold_tokens)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ------------------------------------------------------------------------- format
def check_format(response: str) -> tuple[bool, str]:
    r"""ReSearch's format check of a whole response (inserted results included).

    Returns:
        ``(True, "ok")`` or ``(False, reason)``.

    Examples:
        >>> check_format("<think>a</think><search>q</search> <result>\nx\n</result>"
        ...              "<think>b</think><answer>\\boxed{Lima}</answer>")
        (True, 'ok')
        >>> check_format("<answer>\\boxed{Lima}</answer>")
        (False, 'no_think')
    """
    opens, closes = response.count("<think>"), response.count("</think>")
    if opens != closes:
        return False, "think_unpaired"
    if opens == 0:
        return False, "no_think"
    if response.count("<answer>") != 1 or response.count("</answer>") != 1:
        return False, "answer_count"
    pos = 0
    while (search_at := response.find("<search>", pos)) != -1:
        result_at = response.find("<result>", search_at)
        search_end = response.find("</search>", search_at)
        if result_at == -1 or search_end == -1:
            return False, "search_incomplete"
        result_end = response.find("</result>", result_at)
        if result_end == -1:
            return False, "search_incomplete"
        if not search_at < search_end < result_at < result_end:
            return False, "search_order"
        pos = result_end
    start, end = response.find("<answer>"), response.find("</answer>")
    if start > end:
        return False, "answer_order"
    span = response[start:end]
    if "\\boxed{" not in span or "}" not in span:
        return False, "no_boxed"
    return True, "ok"


# ------------------------------------------------------------------------- answer
def _last_box(text: str) -> str:
    r"""The content of the last ``\boxed`` group of ``text``; raises :class:`BoxError`."""
    spaced = "\\boxed "
    if spaced in text:
        return text.rsplit(spaced, 1)[1].split("$", 1)[0]
    start = text.rfind("\\boxed")
    if start < 0:
        raise BoxError("no \\boxed")
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                group = text[start : i + 1]
                if not group.startswith("\\boxed{"):
                    raise BoxError(f"{group[:16]!r} is not \\boxed{{...}}")
                return group[len("\\boxed{") : -1]
    raise BoxError("unbalanced \\boxed")


def extract_answer(response: str) -> str | None:
    r"""The final answer: the last ``\boxed`` content of the first ``<answer>`` block.

    Returns:
        The answer, or ``None`` when there is no answer block.

    Raises:
        BoxError: When the answer block has no well-formed box.

    Examples:
        >>> extract_answer("<answer> It is \\boxed{Lima}. </answer>")
        'Lima'
        >>> extract_answer("<answer> \\boxed Lima$ </answer>")
        'Lima'
    """
    text = response.strip()
    start = text.find("<answer>")
    if start < 0:
        return None
    end = text.find("</answer>", start + len("<answer>"))
    if end < 0:
        return None
    return _last_box(text[start + len("<answer>") : end])


# ---------------------------------------------------------------- rollout pieces
def search_query(segment: str) -> str:
    """The query of a segment that ended at ``</search>``: between the last ``<search>`` and it.

    Examples:
        >>> search_query("<think>x</think><search> a <search> capital of Peru </search>")
        'capital of Peru'
        >>> search_query("no opening tag</search>")
        ''
    """
    end = segment.rfind("</search>")
    if end < 0:
        return ""
    start = segment.rfind("<search>", 0, end)
    if start < 0:
        return ""
    return segment[start + len("<search>") : end].strip()


def render_passages(contents: Sequence[str]) -> str:
    r"""The block ReSearch inserts after a search, from the passages' ``contents`` strings.

    Examples:
        >>> render_passages(['"Peru"\nLima is the capital.', '"Chile"\nSantiago.'])
        ' <result>\n"Peru"\nLima is the capital.\n\n"Chile"\nSantiago.\n</result>'
    """
    return " <result>\n" + "\n\n".join(contents).strip() + "\n</result>"


def response_from_solution(solution: str) -> str:
    """The response part of a decoded prompt + response, as ReSearch's reward cuts it.

    The text between the first and the second chat marker when the text has one (instruct
    models), else between the first and second ``"Assistant:"``.

    Raises:
        ValueError: When the text has no marker at all.
    """
    marker = CHAT_MARKER if CHAT_MARKER in solution else BASE_MARKER
    parts = solution.split(marker)
    if len(parts) < 2:
        raise ValueError(f"no {marker!r} in the text")
    return parts[1]


# ------------------------------------------------------------------------- reward
def score(
    response: str,
    golden_answers: str | Sequence[str],
    *,
    eos: bool,
    eos_text: str = "<|im_end|>",
    prompt: str | None = None,
) -> tuple[float, str]:
    """ReSearch's reward for one response, with the reason.

    Args:
        response: The generated text with the inserted result blocks, EOS text removed.
        golden_answers: The accepted answers.
        eos: Whether generation ended at the EOS token.
        eos_text: The tokenizer's EOS text (its ``eos_token``).
        prompt: The decoded prompt; ``None`` assumes an instruct prompt that ends with
            :data:`CHAT_MARKER` and contains no other marker.

    Returns:
        ``(reward, reason)``.
    """
    head = CHAT_MARKER if prompt is None else prompt
    solution = head + response + (eos_text if eos else "")
    try:
        cut = response_from_solution(solution)
    except ValueError:
        return 0.0, "no_marker"
    ok, reason = check_format(cut)
    if not ok:
        return 0.0, f"bad_format:{reason}"
    if not cut.endswith(eos_text):
        return 0.0, "over_length"
    cut = cut[: len(cut) - len(eos_text)]
    try:
        answer = extract_answer(cut)
    except BoxError as e:
        return 0.0, f"box_error:{e}"
    if answer is None:
        return 0.0, "no_answer"
    value = f1(answer, golden_answers)
    return (value, "f1") if value > 0 else (0.1, "wrong_answer")
