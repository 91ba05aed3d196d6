"""Core data types shared by datasets, retrievers and the environment.

Field names follow FlashRAG so that its jsonl files load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QAExample:
    """One question with its accepted answers.

    Attributes:
        id: Stable identifier, unique within a dataset.
        question: The question text shown to the agent.
        golden_answers: Every accepted answer string (aliases included); the reward takes the
            maximum over them.
        metadata: Free-form extras (question type, hops, supporting passage ids, ...).
    """

    id: str
    question: str
    golden_answers: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.golden_answers:
            raise ValueError(f"QAExample {self.id!r}: expected at least one golden answer, got []")
        blank = [a for a in self.golden_answers if not isinstance(a, str) or not a.strip()]
        if blank:
            raise ValueError(
                f"QAExample {self.id!r}: golden answers must be non-blank strings, got {blank[0]!r}"
            )


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text.

    Attributes:
        id: Stable identifier, unique within a corpus.
        title: Short title (for the Factbook world: "Country — Section — Field").
        text: The passage body, plain text.
        score: Retrieval score when returned by a retriever, else ``None``.
    """

    id: str
    title: str
    text: str
    score: float | None = None

    @property
    def contents(self) -> str:
        r"""The FlashRAG / Search-R1 ``contents`` form: ``"Title"\ntext``."""
        return f'"{self.title}"\n{self.text}'
