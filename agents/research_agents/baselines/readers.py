"""Reading passages back out of an observation, and the simplest search-once agent."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOC = re.compile(r"^Doc \d+ \(Title: (?P<title>.*?)\) (?P<text>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class ShownPassage:
    """A passage as the agent saw it in a ``<result>`` block."""

    title: str
    text: str

    def fields(self) -> dict[str, str]:
        """The ``key: value`` pairs of a Factbook passage text (first occurrence of each key)."""
        out: dict[str, str] = {}
        for part in self.text.split("; "):
            key, sep, value = part.partition(": ")
            if sep and key.strip() and key.strip().lower() not in out:
                out[key.strip().lower()] = value.strip()
        return out


def parse_result_block(observation: str) -> list[ShownPassage]:
    r"""Return the passages of an observation formatted as ``Doc i (Title: t) text`` lines.

    >>> parse_result_block(" <result>\nDoc 1 (Title: Peru — Capital) name: Lima\n</result>")
    [ShownPassage(title='Peru — Capital', text='name: Lima')]
    """
    return [ShownPassage(m["title"], m["text"]) for m in _DOC.finditer(observation)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class NaiveReaderAgent:
    """Search once with the question, then answer with the first value of the best passage.

    "Best" is the shown passage whose title shares most words with the question. This is a
    naive-RAG reader with no model: it answers single-hop questions whose answer is the first
    field of a passage, and fails on anything that needs a second search.
    """

    name = "naive-reader"

    def __init__(self) -> None:
        self._question = ""
        self._searched = False

    def reset(self, question: str) -> None:
        """Start a new episode on ``question``."""
        self._question = question
        self._searched = False

    def act(self, observation: str) -> str:
        """Return the next action given the latest observation text."""
        if not self._searched:
            self._searched = True
            return (
                f"<think>Let me search for the question.</think><search>{self._question}</search>"
            )
        passages = parse_result_block(observation)
        q = _words(self._question)
        best = max(passages, key=lambda p: len(q & _words(p.title)), default=None)
        answer = ""
        if best is not None:
            first = best.text.split("; ")[0]
            answer = first.partition(": ")[2] or first
        return f"<think>The top passage says {answer}.</think><answer>\\boxed{{{answer}}}</answer>"
