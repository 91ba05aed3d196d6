r"""Prompts and answer post-processing of the prompt-based LLM baselines, in one place.

The ``direct``, ``naive-rag``, ``iter-retgen`` and ``oracle`` agents of
:mod:`research_agents.baselines.llm` ask an instruct model for a *short* answer with a two-message
chat prompt (system + user) rendered by the tokenizer's chat template. They never see the
ReSearch system prompt; the ``research`` agent does (it plays the env's own prompt).

Post-processing is deliberately minimal (:func:`short_answer`): the first non-empty line of the
generation, stripped. Nothing is pattern-matched out of it, so the numbers measure the model,
not a hand-written extractor. :func:`inline` only makes generated text safe to place inside the
agent's action tags (it removes action tags and braces, which would change how the env parses
the action).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "ANSWER_SYSTEM",
    "DIRECT_USER",
    "RAG_USER",
    "direct_messages",
    "inline",
    "rag_messages",
    "render_chat",
    "short_answer",
]

ANSWER_SYSTEM = (
    "You are a helpful assistant. Answer the user's question with a short answer: a name, a "
    "number or a short phrase. Do not explain."
)
"""System message of every short-answer prompt."""

DIRECT_USER = "Question: {question}\nAnswer:"
"""User message of the ``direct`` baseline (no passages): ``{question}`` is substituted."""

RAG_USER = (
    "Answer the question using the passages below.\n\n"
    "Passages:\n{passages}\n\n"
    "Question: {question}\nAnswer:"
)
"""User message of the retrieval baselines: ``{passages}`` (the env's ``Doc i (Title: ...)``
lines, exactly as the env formatted them) and ``{question}`` are substituted."""


def direct_messages(question: str) -> list[dict[str, str]]:
    """The chat messages asking for an answer from the question alone.

    Args:
        question: The question text.

    Returns:
        ``[system, user]`` messages.
    """
    user = DIRECT_USER.replace("{question}", question.strip())
    return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": user}]


def rag_messages(question: str, passages: str) -> list[dict[str, str]]:
    """The chat messages asking for an answer from ``passages``.

    Args:
        question: The question text.
        passages: The retrieved passages as the env showed them (without the result tags).

    Returns:
        ``[system, user]`` messages.
    """
    # Substitute the question last so braces or placeholders inside passages stay literal.
    user = RAG_USER.replace("{passages}", passages.strip(), 1)
    head, _, tail = user.rpartition("{question}")
    user = head + question.strip() + tail
    return [{"role": "system", "content": ANSWER_SYSTEM}, {"role": "user", "content": user}]


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """Render ``messages`` as the prompt text to generate from.

    With a chat template this is ``apply_chat_template(..., add_generation_prompt=True)``;
    without one, a plain ``system / User: / Assistant:`` transcript (as
    :meth:`research_env.templates.PromptTemplate.render` does for base models).

    Args:
        tokenizer: The model's tokenizer.
        messages: ``{"role", "content"}`` messages.

    Returns:
        The prompt text (encode it with ``add_special_tokens=False``).

    Raises:
        TypeError: If the chat template does not return a ``str``.
    """
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(out, str):
            raise TypeError(
                f"apply_chat_template(tokenize=False) returned {type(out).__name__}, expected str"
            )
        return out
    system = [m["content"] for m in messages if m["role"] == "system"]
    user = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    head = f"{system[0]}\n\n" if system else ""
    return f"{head}User: {user}\nAssistant:"


_ACTION_TAG_RE = re.compile(
    r"<\s{0,32}/?\s{0,32}(?:think|search|answer|result|information)\s{0,32}>", re.IGNORECASE
)


def inline(text: str) -> str:
    r"""Make generated text safe inside the agent's own ``<think>``/``<search>``/``\boxed{}``.

    Removes tag-like text (``<search>``, ``</answer>``, ...), braces and backslashes (an
    unbalanced ``}`` would end ``\boxed{`` early), and collapses whitespace to one line.

    Args:
        text: Generated text.

    Returns:
        The cleaned text (possibly empty).

    Examples:
        >>> inline("Lima}</answer>\n more")
        'Lima more'
    """
    text = _ACTION_TAG_RE.sub(" ", text)
    text = text.replace("{", " ").replace("}", " ").replace("\\", " ")
    return " ".join(text.split())


def short_answer(text: str) -> str:
    r"""The answer in a short-answer generation: its first non-empty line, stripped.

    That is all the post-processing there is (then :func:`inline` for the action).

    Args:
        text: The decoded generation (special tokens skipped).

    Returns:
        The first non-empty line, stripped; ``""`` when there is none.

    Examples:
        >>> short_answer("\n  Lima\nIt is the capital.")
        'Lima'
    """
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
