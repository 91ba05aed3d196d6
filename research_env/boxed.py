r"""The final answer inside ``\boxed{...}``: balanced braces, wrappers like ``\text{}`` removed.

:func:`extract_boxed` is what :func:`research_env.actions.parse_action` reads an answer's
``\boxed{}`` with, and what :mod:`research_env.format_check` checks a response's answer for.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["extract_boxed"]

_BOXED_RE = re.compile(r"\\boxed\s{0,32}\{", re.ASCII)
_WRAPPER_RE = re.compile(
    r"\s*\\(?:text|textbf|textit|textrm|textsf|texttt|mathrm|mathbf|mathit|mathsf|mbox|"
    r"operatorname)\s{0,32}\{",
    re.ASCII,
)
_MAX_BOXED_TRIES = 8
_MAX_UNWRAP = 4


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
