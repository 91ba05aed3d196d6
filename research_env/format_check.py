r"""Judge the format of a whole response, for format-aware rewards (ReSearch, Search-R1).

A *response* is everything the agent generated after the prompt, with the observations the
env appended interleaved: ``<think>…</think><search>…</search> <result>…</result> …``
ending in ``<answer>…</answer>``.
:func:`check_research_format` returns ``(ok, reason)``; the reason codes are
:data:`FORMAT_REASONS`. Parsing a single segment is :mod:`research_env.actions`' job.
"""

from __future__ import annotations

import functools
import re

from research_env.actions import _FLAGS, _WS_BEFORE_GT, extract_boxed

__all__ = ["FORMAT_REASONS", "check_research_format", "check_searchr1_format"]

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
