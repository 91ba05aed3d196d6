r"""Parse a generated text segment into an action, and check a whole response's format.

The agent is a language model. Each action is one *segment* of generated text: the model's
turn, normally ending at the first ``</search>`` or ``</answer>`` (the generator's stop strings,
see :data:`STOP_STRINGS`). :func:`parse_action` turns a segment into :class:`Search`,
:class:`Answer` or :class:`Invalid`; :func:`check_research_format` judges a whole response
(every segment with the ``<result>`` observations interleaved) for ReSearch's format reward.

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
``docs/actions.md`` for the full rules and the reasoning behind them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FORMAT_REASONS",
    "INVALID_REASONS",
    "STOP_STRINGS",
    "Action",
    "Answer",
    "Invalid",
    "Search",
    "check_research_format",
    "check_searchr1_format",
    "extract_boxed",
    "parse_action",
    "truncate_at_action",
]

STOP_STRINGS: tuple[str, ...] = ("</search>", "</answer>")
"""The strings a generator should stop on (keep them in the output)."""

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

FORMAT_REASONS: frozenset[str] = frozenset(
    {
        "ok",
        "not_text",
        "no_think",
        "unclosed_tag",
        "unopened_tag",
        "nested_tags",
        "search_without_result",
        "result_without_search",
        "no_answer",
        "multiple_answers",
        "tag_after_answer",
        "no_boxed",
    }
)
"""Every reason code :func:`check_research_format` can return (the text before the colon)."""


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
_BOXED_RE = re.compile(r"\\boxed\s{0,32}\{", re.ASCII)
_WRAPPER_RE = re.compile(
    r"\s*\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|"
    r"operatorname)\s{0,32}\{",
    re.ASCII,
)
_MAX_BOXED_TRIES = 8
_MAX_UNWRAP = 4


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


# --------------------------------------------------------------------------- \boxed{}
def _closing_brace(text: str, open_idx: int) -> int | None:
    r"""Return the index of the ``}`` that closes the ``{`` at ``open_idx``, or ``None``.

    A brace right after a backslash (``\{``, ``\}``) is literal. Runs on the UTF-8 bytes (no
    multi-byte sequence contains an ASCII byte) with numpy, so that a 10 MB run of braces
    takes milliseconds; an unnested ``{...}`` takes a plain ``str.find``.
    """
    close = text.find("}", open_idx + 1)
    if close < 0:
        return None
    inside = text[open_idx + 1 : close]
    if "{" not in inside and "\\" not in inside:
        return close
    raw = text[open_idx:].encode("utf-8", "surrogatepass")
    b = np.frombuffer(raw, dtype=np.uint8)
    step = (b == ord("{")).view(np.int8) - (b == ord("}")).view(np.int8)
    step[1:][b[:-1] == ord("\\")] = 0
    at_zero = np.cumsum(step, dtype=np.int32) == 0
    k = int(at_zero.argmax())
    if not at_zero[k]:
        return None
    return open_idx + len(raw[:k].decode("utf-8", "surrogatepass"))


def _unwrap(text: str) -> str:
    r"""Remove wrappers like ``\text{...}`` that span the whole (stripped) text."""
    for _ in range(_MAX_UNWRAP):
        m = _WRAPPER_RE.match(text)
        if m is None:
            break
        close = _closing_brace(text, m.end() - 1)
        if close is None or text[close + 1 :].strip():
            break
        text = text[m.end() : close]
    return text


def extract_boxed(text: str) -> str | None:
    r"""Return the content of the last balanced ``\boxed{...}`` in ``text``, or ``None``.

    Nested braces are balanced (``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``) and one or more
    wrappers spanning the whole content (``\text{...}``, ``\mathrm{...}``, ...) are removed.
    When the last ``\boxed{`` is unbalanced, earlier ones are tried (up to 8).

    Args:
        text: Any text, typically the content of an ``<answer>`` block.

    Returns:
        The boxed content (not stripped; possibly empty), or ``None`` if there is no balanced
        ``\boxed{...}``.

    Examples:
        >>> extract_boxed(r"The answer is \boxed{\text{Lima}}.")
        'Lima'
        >>> extract_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}")
        '\\frac{1}{2}'
        >>> extract_boxed(r"\boxed{unclosed") is None
        True
    """
    end = len(text)
    for _ in range(_MAX_BOXED_TRIES):
        start = text.rfind("\\boxed", 0, end)
        if start < 0:
            return None
        m = _BOXED_RE.match(text, start)
        if m is not None:
            close = _closing_brace(text, m.end() - 1)
            if close is not None:
                return _unwrap(text[m.end() : close])
        end = start
    return None


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


# --------------------------------------------------------------------------- format check
@functools.lru_cache(maxsize=8)
def _response_tag_re(observation_tag: str) -> re.Pattern[str]:
    return re.compile(
        r"<(/?)(think|search|answer|" + re.escape(observation_tag) + ")" + _WS_BEFORE_GT, _FLAGS
    )


def check_research_format(
    response: str, *, observation_tag: str = "result", require_boxed: bool = True
) -> tuple[bool, str]:
    r"""Check a whole response against ReSearch's format, for its format reward.

    ``response`` is everything after the prompt: each generated segment with the observation
    blocks interleaved. Tags form a flat sequence of blocks (a block cannot open inside
    another), and it is valid when all of these hold:

    * at least one ``<think>…</think>`` block, and every think tag paired (a leading
      ``</think>`` with no opener closes a ``<think>`` prefilled before the response);
    * every ``<search>…</search>`` is followed by a ``<result>…</result>`` before the next
      search or answer, and every result follows a search (no exceptions: a search left
      without a result means the episode never answered, which is invalid anyway);
    * exactly one ``<answer>…</answer>``, and no tag after it;
    * a balanced ``\boxed{...}`` inside the answer (if ``require_boxed``).

    Inside a result block every tag but its closing one is ignored (retrieved text is data).
    Text between blocks is allowed. This is stricter than ReSearch's count-based check, which
    would accept, say, a search inside a think block.

    Args:
        response: The response text.
        observation_tag: The tag observations are wrapped in (``"information"`` for
            Search-R1).
        require_boxed: Whether the answer must contain ``\boxed{...}``.

    Returns:
        ``(True, "ok")``, or ``(False, "code: detail")`` where ``code`` is one of
        :data:`FORMAT_REASONS`.

    Raises:
        ValueError: If ``observation_tag`` is not a plain lowercase tag name distinct from
            think, search and answer.

    Examples:
        >>> check_research_format(
        ...     "<think>a</think><search>q</search> <result>\nDoc 1\n</result>"
        ...     "<think>b</think><answer>\\boxed{Lima}</answer>"
        ... )
        (True, 'ok')
        >>> check_research_format("<think>a</think><answer>Lima</answer>")
        (False, 'no_boxed: the answer has no \\boxed{...}')
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", observation_tag) or observation_tag in (
        "think",
        "search",
        "answer",
    ):
        raise ValueError(f"invalid observation_tag {observation_tag!r}")
    if not isinstance(response, str):
        return False, f"not_text: expected a str, got {type(response).__name__}"

    obs = observation_tag
    open_block: str | None = None  # the block we are inside
    open_at = 0
    awaiting_result = False  # a search closed, its result not yet seen
    thinks = 0
    answer: tuple[int, int] | None = None  # content span of the answer
    first = True
    for m in _response_tag_re(obs).finditer(response):
        closing, name, pos = m.group(1) == "/", m.group(2).lower(), m.start()
        implicit_think = first and closing and name == "think"
        first = False
        if open_block == obs:
            if closing and name == obs:
                open_block = None
            continue  # retrieved text is data
        if open_block is not None:
            if closing and name == open_block:
                if name == "think":
                    thinks += 1
                elif name == "search":
                    awaiting_result = True
                elif name == "answer":
                    answer = (open_at, pos)
                open_block = None
                continue
            return False, (
                f"nested_tags: {m.group(0)} at char {pos} inside the <{open_block}> block"
            )
        if implicit_think:
            thinks += 1
            continue
        if closing:
            return False, f"unopened_tag: {m.group(0)} at char {pos} has no opening tag"
        if answer is not None:
            if name == "answer":
                return False, f"multiple_answers: a second <answer> at char {pos}"
            return False, f"tag_after_answer: {m.group(0)} at char {pos} after the answer"
        if name == obs:
            if not awaiting_result:
                return False, f"result_without_search: <{obs}> at char {pos} follows no search"
            awaiting_result = False
        elif name in ("search", "answer") and awaiting_result:
            return False, f"search_without_result: <{name}> at char {pos} before a <{obs}>"
        open_block, open_at = name, m.end()

    if open_block is not None:
        return False, f"unclosed_tag: <{open_block}> never closed"
    if awaiting_result:
        return False, f"search_without_result: the last search has no <{obs}>"
    if thinks == 0:
        return False, "no_think: no <think>...</think> block"
    if answer is None:
        return False, "no_answer: no <answer>...</answer> block"
    if require_boxed and extract_boxed(response[answer[0] : answer[1]]) is None:
        return False, "no_boxed: the answer has no \\boxed{...}"
    return True, "ok"


def check_searchr1_format(response: str) -> tuple[bool, str]:
    r""":func:`check_research_format` with Search-R1's ``<information>`` tag and no ``\boxed``.

    Args:
        response: The response text.

    Returns:
        ``(ok, reason)`` as for :func:`check_research_format`.

    Examples:
        >>> check_searchr1_format("<think>x</think><answer> Lima </answer>")
        (True, 'ok')
    """
    return check_research_format(response, observation_tag="information", require_boxed=False)
