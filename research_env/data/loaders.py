"""Load QA sets from files in the layout the field already uses (FlashRAG jsonl)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from research_env.data.types import QAExample


class DataFormatError(ValueError):
    """A data file is malformed; the message names the file, the line and the problem."""


def _example_from_record(record: Any, where: str) -> QAExample:
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in ("id", "question", "golden_answers"):
        if key not in record:
            raise DataFormatError(f"{where}: missing field {key!r} (have {sorted(record)})")
    answers = record["golden_answers"]
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise DataFormatError(
            f"{where}: field 'golden_answers' must be a non-empty list of strings, got {answers!r}"
        )
    question = record["question"]
    if not isinstance(question, str) or not question.strip():
        raise DataFormatError(
            f"{where}: field 'question' must be a non-empty string, got {question!r}"
        )
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataFormatError(f"{where}: field 'metadata' must be an object, got {metadata!r}")
    return QAExample(str(record["id"]), question, list(answers), metadata)


def load_qa_jsonl(path: str | Path) -> list[QAExample]:
    """Read a FlashRAG-style QA file: one ``{"id", "question", "golden_answers"}`` per line.

    Blank lines are skipped; ``metadata`` is kept when present; a bare string answer is accepted.

    Args:
        path: The ``.jsonl`` file.

    Returns:
        The examples in file order.

    Raises:
        DataFormatError: On a malformed line or a duplicate id, naming ``file:line`` and field.
        FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    examples: list[QAExample] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
            example = _example_from_record(record, where)
            if example.id in seen:
                raise DataFormatError(
                    f"{where}: duplicate id {example.id!r} (first seen on line {seen[example.id]})"
                )
            seen[example.id] = lineno
            examples.append(example)
    if not examples:
        raise DataFormatError(f"{path}: no examples found")
    return examples
