"""Load QA sets from files in the layout the field already uses (FlashRAG jsonl)."""

from __future__ import annotations

from pathlib import Path

from research_env.data.files import iter_records
from research_env.data.types import QAExample
from research_env.data.validation import DataFormatError, UniqueIds, example_from_record

__all__ = ["DataFormatError", "load_qa_jsonl"]


def load_qa_jsonl(path: str | Path) -> list[QAExample]:
    """Read a FlashRAG-style QA file: one ``{"id", "question", "golden_answers"}`` per line.

    Blank lines are skipped; ``metadata`` is kept when present; a bare string answer is accepted.
    ``.jsonl.gz`` files and ``.json`` files holding a list of such records are read too. The
    checks are :mod:`research_env.data.validation`'s, shared with every other loader.

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
    seen = UniqueIds()
    for record, where in iter_records(path):
        example = example_from_record(record, where)
        seen.add(example.id, where)
        examples.append(example)
    if not examples:
        raise DataFormatError(f"{path}: no examples found")
    return examples
