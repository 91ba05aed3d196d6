r"""Parse a generated text segment into an action, and check a whole response's format.

The agent is a language model. Each action is one *segment* of generated text: the model's
turn, normally ending at the first ``</search>`` or ``</answer>`` (the generator's stop strings,
see :data:`STOP_STRINGS`). :func:`parse_action` turns a segment into :class:`Search`,
:class:`Answer` or :class:`Invalid`. Judging a whole response (every segment with the
observations interleaved) is :mod:`research_env.format_check`'s job.

The grammar is ReSearch's (arXiv 2503.19470)::

    <think> reasoning </think> <search> query </search>
    <think> reasoning </think> <answer> ... \boxed{final answer} ... </answer>

Search-R1's variant (the same tags, no ``\boxed{}``) is accepted too. Tag names are
case-insensitive (ASCII only), whitespace may precede the ``>`` (``<search >``), and the
content may span lines. Tags take no attributes and cannot be escaped.

Precedence (:func:`parse_action`), in one sentence: **the first closing action tag decides**.

1. The first ``</search>`` or ``</answer>`` in the segment picks the action. A generator
   that stops on those strings would have stopped there, so nothing after it is read.
2. Its content starts after the *last* opening tag of the same kind before it: ReSearch
   reads the query between the last ``<search>`` and ``</search>``. A stuttered
   ``<search>a <search>b</search>`` searches for ``b``.
3. The content must contain no other recognised tag, and no opening tag of the *other* action
   may come before it (it would still be open): ``<search><answer>x</answer></search>`` is
   ``Invalid("nested_tags")``.
4. With no closing action tag: an opening one gives ``Invalid("unclosed_tag")``, none at all
   gives ``Invalid("no_action_tag")``. A closing tag with no opener before it gives
   ``Invalid("unopened_tag")``.

The stable :class:`Invalid` reasons are listed in :data:`INVALID_REASONS`; see
``docs/actions.md`` for the full rules and the reasoning behind them. The final answer's
``\boxed{}`` is found by :func:`research_env.boxed.extract_boxed` (re-exported here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from research_env.boxed import extract_boxed

__all__ = [
    "ANSWER_OPEN",
    "INVALID_REASONS",
    "STOP_STRINGS",
    "Action",
    "Answer",
    "Invalid",
    "Search",
    "extract_boxed",
    "parse_action",
    "truncate_at_action",
]

STOP_STRINGS: tuple[str, ...] = ("</search>", "</answer>")
"""The strings a generator should stop on (keep them in the output)."""

ANSWER_OPEN = "<answer>"
"""The tag that opens an answer (what ``TurnSettings.answer_continuation`` follows)."""

INVALID_REASONS: frozenset[str] = frozenset(
    {
        "not_text",
        "no_action_tag",
        "unclosed_tag",
        "unopened_tag",
        "nested_tags",
        "empty_query",
        "empty_answer",
    }
)
"""Every ``Invalid.reason`` :func:`parse_action` can return."""


@dataclass(frozen=True)
class Search:
    """A search action.

    Attributes:
        query: The query: control characters removed, whitespace runs collapsed to one space,
            stripped, and cut to ``max_query_chars`` characters. Never empty.
        think: The reasoning before the action (see ``docs/actions.md``), or ``None``.
        truncated: Whether the query was cut to ``max_query_chars``.
    """

    query: str
    think: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class Answer:
    r"""An answer action; it ends the episode.

    Attributes:
        text: The answer to score: the content of the last balanced ``\boxed{...}`` inside
            ``<answer>`` (one wrapping ``\text{...}``-like macro removed) when there is one,
            else the whole answer content; control characters removed, whitespace collapsed,
            stripped, and cut to ``max_answer_chars``. Never empty.
        raw: The content between ``<answer>`` and ``</answer>``, exactly as generated.
        boxed: Whether ``text`` came from a ``\boxed{...}``.
        think: The reasoning before the action, or ``None``.
        truncated: Whether ``text`` was cut to ``max_answer_chars``.
    """

    text: str
    raw: str
    boxed: bool = False
    think: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class Invalid:
    """A segment that is neither a well-formed search nor a well-formed answer.

    Attributes:
        reason: A short stable code, one of :data:`INVALID_REASONS` (environments may add
            their own, e.g. ``"search_on_last_turn"``).
        detail: A human-readable explanation (not stable; for logs and corrective messages).
    """

    reason: str
    detail: str = ""


Action = Search | Answer | Invalid
"""What :func:`parse_action` returns."""

# --------------------------------------------------------------------------- regexes
# Every tag regex is ASCII-only and case-insensitive: with Unicode case folding "ſ" would match
# "s" and the Kelvin sign "k". Whitespace before ">" is bounded so that every regex is linear.
_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL
_WS_BEFORE_GT = r"\s{0,32}>"
_ACTION_CLOSE_RE = re.compile(r"</(search|answer)" + _WS_BEFORE_GT, _FLAGS)
_SEGMENT_TAG_RE = re.compile(
    r"</?(?:think|search|answer|result|information)" + _WS_BEFORE_GT, _FLAGS
)


class _TagFinder:
    """Finds the first or the last occurrence of one tag before a position, in linear time.

    Group 1 of every match is the tag itself.
    """

    _FORWARD_STEPS = 8

    def __init__(self, tag: str) -> None:
        self.forward = re.compile("(" + tag + _WS_BEFORE_GT + ")", _FLAGS)
        # Anchored at a position, ``.*`` jumps to the end and backtracks to the last tag.
        self.backward = re.compile(".*(" + tag + _WS_BEFORE_GT + ")", _FLAGS)

    def first(self, text: str, end: int) -> re.Match[str] | None:
        """The first match in ``text[:end]``."""
        return self.forward.search(text, 0, end)

    def last(self, text: str, end: int) -> re.Match[str] | None:
        """The last match in ``text[:end]``.

        A few forward searches (fast: they skip to the next ``<``) cover the usual case of few
        tags; after that one backtracking match from the last hit bounds the cost.
        """
        found: re.Match[str] | None = None
        pos = 0
        for _ in range(self._FORWARD_STEPS):
            m = self.forward.search(text, pos, end)
            if m is None:
                return found
            found, pos = m, m.end()
        return self.backward.match(text, pos, end) or found


_ANY_ACTION_OPEN = _TagFinder("<(?:search|answer)")
_OPEN = {kind: _TagFinder(f"<{kind}") for kind in ("search", "answer", "think")}
_THINK_CLOSE = _TagFinder("</think")

# Control characters other than whitespace, and lone surrogates (they cannot be UTF-8 encoded).
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]+")
_ASCII_CONTROL = bytes([*range(0x09), *range(0x0E, 0x20), 0x7F])


def _strip_controls(text: str) -> str:
    """Remove control characters (but not whitespace) and lone surrogates."""
    if text.isascii():  # O(1); bytes.translate deletes in C, ten times faster than a regex
        return text.encode("ascii").translate(None, _ASCII_CONTROL).decode("ascii")
    return _CONTROL_RE.sub("", text)


def _clean(text: str) -> str:
    """Remove control characters and lone surrogates, collapse whitespace runs, strip."""
    return " ".join(_strip_controls(text).split())


def _clean_capped(raw: str, max_chars: int) -> tuple[str, bool]:
    """Clean ``raw`` and cut it to ``max_chars``; return ``(text, truncated)``.

    Cleaning a prefix of ``raw`` gives a prefix of the cleaned ``raw``, so growing windows
    bound the work by what the result needs rather than by the segment's length.
    """
    window = 4 * max_chars + 64
    while window < len(raw):
        head = _clean(raw[:window])
        if len(head) > max_chars:
            return head[:max_chars].rstrip(), True
        window *= 4
    text = _clean(raw)
    if len(text) > max_chars:
        return text[:max_chars].rstrip(), True
    return text, False


def _clean_think(text: str) -> str:
    """Remove control characters and lone surrogates, strip (line breaks are kept)."""
    return _strip_controls(text).strip()


# --------------------------------------------------------------------------- parse_action
def _think_before(segment: str, end: int) -> str | None:
    """The reasoning before ``end`` (the action's opening tag): see ``docs/actions.md``."""
    last_open = _OPEN["think"].last(segment, end)
    last_close = _THINK_CLOSE.last(segment, end)
    if last_open is not None and (last_close is None or last_close.start(1) < last_open.start(1)):
        return _clean_think(segment[last_open.end(1) : end])  # still open: runs up to the action
    if last_close is None:
        return None
    opener = _OPEN["think"].last(segment, last_close.start(1))
    start = 0 if opener is None else opener.end(1)  # no opener: <think> was prefilled
    return _clean_think(segment[start : last_close.start(1)])


def parse_action(
    segment: str, *, max_query_chars: int = 512, max_answer_chars: int = 4096
) -> Action:
    r"""Parse one generated segment into a :class:`Search`, :class:`Answer` or :class:`Invalid`.

    Never raises for any ``str`` (a non-``str`` gives ``Invalid("not_text")``) and runs in
    linear time. The precedence rules are in the module docstring and ``docs/actions.md``.

    Args:
        segment: The generated text of one turn.
        max_query_chars: Longer queries are cut to this many characters (the prefix is kept
            and ``Search.truncated`` is set).
        max_answer_chars: Likewise for ``Answer.text`` (``Answer.truncated``); no golden
            answer is that long, and the cap keeps degenerate segments cheap.

    Returns:
        The parsed action.

    Raises:
        ValueError: If ``max_query_chars`` or ``max_answer_chars`` is not an int ``>= 1``.

    Examples:
        >>> parse_action("<think>Look it up.</think>\n<search> capital of\n Peru </search>")
        Search(query='capital of Peru', think='Look it up.', truncated=False)
        >>> parse_action(r"<answer>It is \boxed{Lima}.</answer>")
        Answer(text='Lima', raw='It is \\boxed{Lima}.', boxed=True, think=None, truncated=False)
        >>> parse_action("<search>capital of Peru").reason
        'unclosed_tag'
    """
    for name, value in (
        ("max_query_chars", max_query_chars),
        ("max_answer_chars", max_answer_chars),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected an int {name} >= 1, got {value!r}")
    if not isinstance(segment, str):
        return Invalid("not_text", f"expected a str, got {type(segment).__name__}")

    close = _ACTION_CLOSE_RE.search(segment)
    if close is None:
        opened = _ANY_ACTION_OPEN.last(segment, len(segment))
        if opened is not None:
            return Invalid(
                "unclosed_tag",
                f"{opened.group(1)} opened at char {opened.start(1)} but never closed",
            )
        return Invalid("no_action_tag", "no <search> or <answer> tag found")

    kind = close.group(1).lower()
    opener = _OPEN[kind].last(segment, close.start())
    if opener is None:
        return Invalid(
            "unopened_tag", f"</{kind}> at char {close.start()} has no matching <{kind}>"
        )
    start, end = opener.end(1), close.start()
    inner = _SEGMENT_TAG_RE.search(segment, start, end)
    if inner is not None:
        return Invalid(
            "nested_tags", f"{inner.group(0)} at char {inner.start()} inside the <{kind}> block"
        )
    other = "answer" if kind == "search" else "search"
    outer = _OPEN[other].first(segment, opener.start(1))
    if outer is not None:
        return Invalid(
            "nested_tags",
            f"<{kind}> at char {opener.start(1)} is inside the <{other}> opened at char "
            f"{outer.start()} and never closed",
        )

    think = _think_before(segment, opener.start(1))
    raw = segment[start:end]
    if kind == "search":
        query, truncated = _clean_capped(raw, max_query_chars)
        if not query:
            return Invalid("empty_query", "the <search> block has no query")
        return Search(query=query, think=think, truncated=truncated)

    boxed = extract_boxed(raw)
    text, truncated = _clean_capped(raw if boxed is None else boxed, max_answer_chars)
    if not text:
        where = r"\boxed{}" if boxed is not None else "<answer> block"
        return Invalid("empty_answer", f"the {where} is empty")
    return Answer(text=text, raw=raw, boxed=boxed is not None, think=think, truncated=truncated)


def truncate_at_action(segment: str) -> str:
    """Cut ``segment`` just after its first ``</search>`` or ``</answer>`` (the part read).

    Useful when the generator did not stop on :data:`STOP_STRINGS`: the text after the first
    closing action tag is ignored by :func:`parse_action` and should not enter the context.

    Args:
        segment: The generated text of one turn.

    Returns:
        The prefix up to and including the first closing action tag, or ``segment`` unchanged
        if it has none.

    Examples:
        >>> truncate_at_action("<search>a</search><result>made up</result>")
        '<search>a</search>'
    """
    close = _ACTION_CLOSE_RE.search(segment)
    return segment if close is None else segment[: close.end()]
