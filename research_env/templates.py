r"""Prompt templates and observation formats for ReSearch- and Search-R1-style agents.

A :class:`PromptTemplate` renders the prompt the agent starts generating from, and formats
what the environment appends to the agent's context after each action: retrieved passages,
a retrieval error, or a corrective message after an invalid action.

Five templates are built in (:data:`TEMPLATES`, :func:`get_template`):

* ``research_base``: a plain-text prompt for base models, in ReSearch's style, ending with
  ``User: {question}\nAssistant:``. Answers go in ``<answer>…\boxed{…}…</answer>``; results come
  back as ``<result>…</result>``.
* ``research_instruct``: the same instructions as a system prompt, the question as the user
  message; formatted with the tokenizer's chat template when one is given.
* ``research_compact``: ``research_instruct`` with passages cut to 40 words (small models).
* ``research_hops``: ``research_compact`` with a tags-only prompt for multi-hop questions.
* ``research_hops_guided``: ``research_hops`` with its examples' results in the corpus's
  layout and a sentence on how a bridge question is searched.
* ``research_hops_titles``: ``research_hops`` whose results end with a line naming the
  countries they are about (``titles_line``), as its examples show.
* ``searchr1``: Search-R1's format: results in ``<information>…</information>``, the answer in
  ``<answer> … </answer>`` without ``\boxed{}``; one user message.

Retrieved passages are rendered ``Doc {i} (Title: {title}) {text}`` (1-based). Any tag the
agent's grammar recognises that appears *inside* a passage, an error message or a reason is
defused (``<`` becomes ``&lt;``), so observations can never close their own block early or
look like an action.

The instruction texts themselves are in :mod:`research_env.builtin_prompts`. What stays here is
one job, :class:`PromptTemplate`: rendering a prompt and formatting each kind of observation
from the same fields. It is a little over ~400 lines because every formatter carries its
docstring and doctest (the observation formats are part of the protocol); split, the formats
would sit apart from the fields that drive them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from research_env.actions import STOP_STRINGS
from research_env.builtin_prompts import (
    HOPS_GUIDED_SYSTEM,
    HOPS_SYSTEM,
    HOPS_TITLES_SYSTEM,
    RESEARCH_BASE,
    RESEARCH_SYSTEM,
    SEARCHR1_INSTRUCTIONS,
)
from research_env.data.types import Passage
from research_env.format_check import check_research_format

__all__ = [
    "TEMPLATES",
    "ChatTokenizer",
    "PromptTemplate",
    "get_template",
]


@runtime_checkable
class ChatTokenizer(Protocol):
    """Anything with a Hugging Face-style ``apply_chat_template``, e.g. a transformers tokenizer."""

    def apply_chat_template(
        self,
        conversation: list[dict[str, str]],
        *,
        tokenize: bool = ...,
        add_generation_prompt: bool = ...,
        **kwargs: Any,
    ) -> Any:
        """Format ``conversation`` with the model's chat template.

        Args:
            conversation: ``{"role": ..., "content": ...}`` messages.
            tokenize: Whether to return token ids instead of text (called with ``False``).
            add_generation_prompt: Whether to end with the assistant turn's header.
            **kwargs: Implementation-specific options.

        Returns:
            The formatted conversation (a ``str`` when ``tokenize=False``).
        """
        ...


_QUESTION = "{question}"
# Every tag an agent or format check could act on; defused inside observation text.
_TAG_RE = re.compile(
    r"<(?=\s{0,32}/?\s{0,32}(?:think|search|answer|result|information)\b)", re.IGNORECASE
)
_LINE_BREAKS_RE = re.compile(r"\s*[\r\n]+\s*")


def _defuse(text: str) -> str:
    """Make tag-like text inert: ``<search>`` becomes ``&lt;search>``."""
    return _TAG_RE.sub("&lt;", text)


def _one_line(text: str) -> str:
    return _LINE_BREAKS_RE.sub(" ", _defuse(text)).strip()


@dataclass(frozen=True)
class PromptTemplate:
    r"""A prompt and the observation formats that go with it.

    Attributes:
        name: The template's name.
        user_template: The user message (or, for base models, the whole prompt); contains
            ``{question}`` exactly once. Only that placeholder is substituted, so other braces
            (``\boxed{}``) are literal.
        system_prompt: The system message, or ``None``.
        use_chat_template: Whether :meth:`render` applies a tokenizer's chat template when
            one is given (``False`` for base-model prompts).
        style: ``"research"`` (``<result>``, ``\boxed{}`` answers) or ``"searchr1"``
            (``<information>``, plain answers).
        observation_tag: The tag wrapping observations: ``"result"`` or ``"information"``.
        observation_prefix: Text before the passages; opens ``observation_tag``.
        observation_suffix: Text after the passages; closes ``observation_tag``.
        doc_separator: Text between two passages.
        boxed_answer: Whether answers are expected in ``\boxed{}``.
        response_prefix: Suggested text to prefill the response with (``""``: none). If you
            prefill ``<think>``, the actions and format checks accept a response that starts
            inside the think block.
        max_doc_words: Cut each passage to its first N words in observations (``None``: whole
            passages). Short observations keep small models on track and rollouts cheap.
        titles_line: Text that starts a last line of each observation naming the distinct
            subjects of its passages, best first: each title up to its first ``" — "``
            (``"Results about: "`` gives ``Results about: Chile, Peru``). ``None``: no such
            line. It puts the name a next query needs next to where the query is written,
            which helps small models on bridge questions (docs/results.md).
    """

    name: str
    user_template: str
    system_prompt: str | None = None
    use_chat_template: bool = False
    style: Literal["research", "searchr1"] = "research"
    observation_tag: str = "result"
    observation_prefix: str = " <result>\n"
    observation_suffix: str = "\n</result>"
    doc_separator: str = "\n\n"
    boxed_answer: bool = True
    response_prefix: str = ""
    max_doc_words: int | None = None
    titles_line: str | None = None

    def __post_init__(self) -> None:
        if self.max_doc_words is not None and self.max_doc_words < 1:
            raise ValueError(f"template {self.name!r}: max_doc_words must be >= 1 or None")
        if self.user_template.count(_QUESTION) != 1:
            raise ValueError(
                f"template {self.name!r}: user_template must contain {_QUESTION} exactly once"
            )
        if f"<{self.observation_tag}>" not in self.observation_prefix:
            raise ValueError(
                f"template {self.name!r}: observation_prefix must open <{self.observation_tag}>"
            )
        if f"</{self.observation_tag}>" not in self.observation_suffix:
            raise ValueError(
                f"template {self.name!r}: observation_suffix must close </{self.observation_tag}>"
            )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        constant: str | None = None,
        name: str | None = None,
        style: Literal["research", "searchr1"] = "research",
        **fields: Any,
    ) -> PromptTemplate:
        r"""A template whose prompt text comes from a file (yours, or a paper's checkout).

        A text with a ``{question}`` placeholder becomes the user message (a base-model
        prompt: no chat template); one without becomes the system prompt, the bare question
        the user message (ReSearch's instruct setting). See :mod:`research_env.prompt_files`.

        Args:
            path: A text file, or a ``.py`` file with ``constant`` naming a string in it.
            constant: The constant to read from a ``.py`` file (``"make_prefix.prefix"`` for a
                string assigned inside a function).
            name: The template's name (default: the file's stem and the constant).
            style: ``"research"`` (``<result>``, ``oxed{}``) or ``"searchr1"``
                (``<information>``, plain answers).
            **fields: Any other :class:`PromptTemplate` field.

        Returns:
            The template.

        Raises:
            research_env.prompt_files.PromptFileError: If the file or constant is missing.
        """
        from research_env.prompt_files import read_prompt_text

        text = read_prompt_text(path, constant)
        label = name or ":".join(x for x in (Path(path).stem, constant) if x)
        base: dict[str, Any] = {"name": label, "style": style}
        if style == "searchr1":
            base.update(
                observation_tag="information",
                observation_prefix="\n\n<information>",
                observation_suffix="</information>\n\n",
                doc_separator="\n",
                boxed_answer=False,
            )
        if _QUESTION in text:
            base.update(user_template=text, use_chat_template=style == "searchr1")
        else:
            base.update(system_prompt=text, user_template=_QUESTION, use_chat_template=True)
        base.update(fields)
        return cls(**base)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The strings generation should stop on (keep them in the output)."""
        return STOP_STRINGS

    def user_message(self, question: str) -> str:
        """The user message for ``question`` (surrounding whitespace stripped).

        Args:
            question: The question text.

        Returns:
            ``user_template`` with the question substituted.
        """
        return self.user_template.replace(_QUESTION, question.strip())

    def messages(self, question: str) -> list[dict[str, str]]:
        """The chat messages for ``question``: the system prompt (if any), then the user's.

        Args:
            question: The question text.

        Returns:
            ``[{"role": "system", ...}, {"role": "user", ...}]`` (no system entry without a
            system prompt).
        """
        msgs = (
            []
            if self.system_prompt is None
            else [{"role": "system", "content": self.system_prompt}]
        )
        msgs.append({"role": "user", "content": self.user_message(question)})
        return msgs

    def render(self, question: str, tokenizer: ChatTokenizer | None = None) -> str:
        """Render the prompt to generate from.

        With a tokenizer and ``use_chat_template``, this is
        ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``.
        Otherwise it is plain text: the system prompt (if any), a blank line, then the user
        message; a system prompt also adds ``User:`` / ``Assistant:`` turns so the text reads
        as a transcript. A base-model template ignores the tokenizer.

        Args:
            question: The question text.
            tokenizer: An optional chat tokenizer.

        Returns:
            The prompt. :attr:`response_prefix` is not included.

        Raises:
            TypeError: If the tokenizer's chat template does not return a ``str``.
        """
        if tokenizer is not None and self.use_chat_template:
            out = tokenizer.apply_chat_template(
                self.messages(question), tokenize=False, add_generation_prompt=True
            )
            if not isinstance(out, str):
                raise TypeError(
                    f"apply_chat_template(tokenize=False) returned {type(out).__name__}, "
                    "expected str"
                )
            return out
        user = self.user_message(question)
        if self.system_prompt is None:
            return user
        return f"{self.system_prompt}\n\nUser: {user}\nAssistant:"

    def _wrap(self, body: str) -> str:
        return f"{self.observation_prefix}{body}{self.observation_suffix}"

    def format_observation(self, passages: Sequence[Passage]) -> str:
        r"""Format retrieved passages as the observation block.

        Args:
            passages: The passages, best first.

        Returns:
            For ``research`` templates ``" <result>\n" + docs + "\n</result>"`` with the docs
            separated by blank lines; for ``searchr1``
            ``"\n\n<information>" + docs + "\n</information>\n\n"``, one doc per line.
            Each doc is ``Doc {i} (Title: {title}) {text}``; no passages gives
            ``[no results]``.

        Examples:
            >>> p = Passage("p1", "Peru", "Lima is the capital.")
            >>> get_template("research_base").format_observation([p])
            ' <result>\nDoc 1 (Title: Peru) Lima is the capital.\n</result>'
        """
        if not passages:
            return self._wrap("[no results]")
        docs = [
            f"Doc {i} (Title: {_one_line(p.title)}) {_defuse(self._cut(p.text))}"
            for i, p in enumerate(passages, start=1)
        ]
        if self.titles_line is not None:
            subjects = dict.fromkeys(_one_line(p.title).split(" — ")[0] for p in passages)
            docs[-1] += f"\n{self.titles_line}{', '.join(s for s in subjects if s)}"
        return self._wrap(self.doc_separator.join(docs))

    def _cut(self, text: str) -> str:
        if self.max_doc_words is None:
            return text
        words = text.split()
        if len(words) <= self.max_doc_words:
            return text
        return " ".join(words[: self.max_doc_words]) + " ..."

    def format_error(self, message: str) -> str:
        r"""Format a retrieval failure, clearly marked so it never reads as a passage.

        Args:
            message: What went wrong.

        Returns:
            The observation block holding ``[retrieval error: message]``.

        Examples:
            >>> get_template("research_base").format_error("index offline")
            ' <result>\n[retrieval error: index offline]\n</result>'
        """
        return self._wrap(f"[retrieval error: {_one_line(message) or 'unknown'}]")

    def format_invalid(self, reason: str) -> str:
        """Format the corrective observation after an invalid action (Search-R1's idea).

        The text names the tags without angle brackets, so it can never be parsed as an action
        or disturb the format check of the response it is appended to.

        Args:
            reason: The ``Invalid.reason`` code (or any short text).

        Returns:
            The message, on its own lines.
        """
        answer = (
            "the answer tags, with the final answer in \\boxed{}"
            if self.boxed_answer
            else "the answer tags"
        )
        return (
            f"\nMy previous action is invalid ({_one_line(reason) or 'unknown'}). "
            "If I want to search, I should put the query between the search tags. "
            f"If I want to give the final answer, I should put it between {answer}. "
            "Let me try again.\n"
        )

    def format_answer_now(self) -> str:
        """The note appended before the last turn when the environment allows no more searches.

        Returns:
            The message, on its own lines, without angle brackets.
        """
        boxed = " in \\boxed{}" if self.boxed_answer else ""
        return (
            "\nI cannot search any more, so I must now give my final answer "
            f"between the answer tags{boxed}.\n"
        )

    def check_format(self, response: str) -> tuple[bool, str]:
        r"""Check ``response`` with :func:`~research_env.format_check.check_research_format`.

        Uses this template's observation tag and ``\boxed{}`` requirement.

        Args:
            response: Everything generated after the prompt, observations included.

        Returns:
            ``(ok, reason)``.
        """
        return check_research_format(
            response, observation_tag=self.observation_tag, require_boxed=self.boxed_answer
        )


_RESEARCH_INSTRUCT = PromptTemplate(
    name="research_instruct",
    system_prompt=RESEARCH_SYSTEM,
    user_template="{question}",
    use_chat_template=True,
)
# research_instruct with passages cut to 40 words: cheaper rollouts for small models.
_RESEARCH_COMPACT = replace(_RESEARCH_INSTRUCT, name="research_compact", max_doc_words=40)

TEMPLATES: dict[str, PromptTemplate] = {
    "research_base": PromptTemplate(
        name="research_base",
        user_template=RESEARCH_BASE,
    ),
    "research_instruct": _RESEARCH_INSTRUCT,
    "research_compact": _RESEARCH_COMPACT,
    # Multi-hop on small models: research_compact's format with a tags-only prompt whose
    # examples answer with one and with two searches.
    "research_hops": replace(_RESEARCH_COMPACT, name="research_hops", system_prompt=HOPS_SYSTEM),
    # research_hops with its examples' results in the corpus's layout and a how-to sentence
    "research_hops_guided": replace(
        _RESEARCH_COMPACT, name="research_hops_guided", system_prompt=HOPS_GUIDED_SYSTEM
    ),
    # research_hops whose observations end with a line naming the results' countries
    "research_hops_titles": replace(
        _RESEARCH_COMPACT,
        name="research_hops_titles",
        system_prompt=HOPS_TITLES_SYSTEM,
        titles_line="Results about: ",
    ),
    "searchr1": PromptTemplate(
        name="searchr1",
        user_template=SEARCHR1_INSTRUCTIONS,
        use_chat_template=True,
        style="searchr1",
        observation_tag="information",
        observation_prefix="\n\n<information>",
        observation_suffix="\n</information>\n\n",
        doc_separator="\n",
        boxed_answer=False,
    ),
}
"""The built-in templates by name."""


def get_template(name: str | PromptTemplate) -> PromptTemplate:
    """Return a built-in template by name (a :class:`PromptTemplate` is returned unchanged).

    Args:
        name: A key of :data:`TEMPLATES`, or a template.

    Returns:
        The template.

    Raises:
        ValueError: If the name is unknown.

    Examples:
        >>> get_template("searchr1").observation_tag
        'information'
    """
    if isinstance(name, PromptTemplate):
        return name
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        expected = ", ".join(TEMPLATES)
        raise ValueError(f"unknown template {name!r}; expected one of: {expected}") from None
