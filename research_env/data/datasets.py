"""The QA benchmarks Search-R1 and ReSearch report on, read from FlashRAG's files or the originals.

FlashRAG (``RUC-NLPIR/FlashRAG_datasets`` on the Hugging Face Hub) ships each benchmark as a
folder of jsonl files, one ``{"id", "question", "golden_answers", "metadata"}`` record a line::

    FlashRAG_datasets/
    ├── hotpotqa/         train.jsonl  dev.jsonl
    ├── 2wikimultihopqa/  train.jsonl  dev.jsonl
    ├── musique/          train.jsonl  dev.jsonl
    ├── bamboogle/        test.jsonl
    ├── nq/               train.jsonl  dev.jsonl  test.jsonl
    ├── triviaqa/         train.jsonl  dev.jsonl  test.jsonl
    └── popqa/            test.jsonl

``load_dataset("hotpotqa", root="FlashRAG_datasets", split="dev")`` reads
``FlashRAG_datasets/hotpotqa/dev.jsonl``. Where that file is absent, the dataset's original
release is looked for in the same folder (and in ``root`` itself): HotpotQA's JSON list
(``hotpot_dev_distractor_v1.json``: ``_id``, ``answer``, ``type``, ``level``,
``supporting_facts``, ``context``), 2WikiMultiHopQA's JSON list (``dev.json``: ``_id``,
``answer``, ``type``, ``evidences``, ...), MuSiQue's jsonl (``musique_ans_v1.0_dev.jsonl``:
``answer``, ``answer_aliases``, ``paragraphs``, ``question_decomposition``) and PopQA's TSV
(``popQA.tsv``: ``possible_answers``, ``prop``, ``s_pop``, ...). ``root`` may also be one file.

Both layouts give the same :class:`~research_env.data.types.QAExample`: the same id, question,
answers and metadata. ``metadata["type"]`` holds the question type where the dataset has one
(HotpotQA ``bridge`` / ``comparison``; 2Wiki ``comparison`` / ``inference`` /
``compositional`` / ``bridge_comparison``; MuSiQue ``2hop`` / ``3hop`` / ``4hop``; PopQA the
relation, e.g. ``occupation``); the env reports it as ``info["question_type"]``. Paragraphs
given with a question are put in ``metadata["context"]`` in a layout that
``retriever="closed"`` reads (see :mod:`research_env.retrieval.closed`).

With ``root=None`` the files come from the Hub through the ``datasets`` library; offline
(``HF_HUB_OFFLINE=1``, the default here) that fails with :class:`DatasetUnavailableError`,
which says what to download and where to put it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from research_env.data.families import (
    HOTPOTQA_LEVELS,
    HOTPOTQA_TYPES,
    MUSIQUE_TYPES,
    POPQA_KEPT,
    TWOWIKI_TYPES,
)
from research_env.data.files import iter_records
from research_env.data.registry import DATASETS, HUB_REPO, DatasetSpec, get_spec
from research_env.data.types import QAExample
from research_env.data.validation import DataFormatError, UniqueIds, require_object

__all__ = [
    "DATASETS",
    "HOTPOTQA_LEVELS",
    "HOTPOTQA_TYPES",
    "HUB_REPO",
    "MUSIQUE_TYPES",
    "POPQA_KEPT",
    "TWOWIKI_TYPES",
    "DatasetSpec",
    "DatasetUnavailableError",
    "find_file",
    "get_spec",
    "load_dataset",
]


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be read: no local copy was given and the Hub cannot be reached."""


def _collect(
    records: Iterator[tuple[Any, str]],
    spec: DatasetSpec,
    limit: int | None,
    source: str,
    flashrag: bool | None = None,
) -> list[QAExample]:
    """Parse ``records``; the layout (``flashrag``) is the first record's unless given."""
    examples: list[QAExample] = []
    seen = UniqueIds()
    for record, where in records:
        record = require_object(record, where)
        if flashrag is None:
            flashrag = not spec.is_original(record)
        example = spec.parse(record, where, flashrag)
        seen.add(example.id, where)
        examples.append(example)
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataFormatError(f"{source}: no examples found")
    return examples


def find_file(spec: DatasetSpec, root: Path, split: str) -> Path:
    """The file ``load_dataset`` reads for ``spec``'s ``split`` under ``root``.

    Tried in order: ``root`` itself when it is a file; FlashRAG's ``{root}/{name}/{split}.jsonl``;
    then each original file name for the split in ``{root}/{name}/`` and in ``root``.

    Raises:
        FileNotFoundError: If none exists; the message lists every path tried.
    """
    if root.is_file():
        return root
    candidates = [root / spec.name / f"{split}.jsonl"]
    for name in spec.original_files.get(split, ()):
        candidates += [root / spec.name / name, root / name]
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"no {spec.title} {split!r} file under {root} (tried {tried}); FlashRAG's copy is "
        f"https://huggingface.co/datasets/{HUB_REPO}/tree/main/{spec.name}"
    )


def _hub_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _load_from_hub(spec: DatasetSpec, split: str, limit: int | None) -> list[QAExample]:
    hint = (
        f"download {spec.name}/{split}.jsonl from https://huggingface.co/datasets/{HUB_REPO} "
        f"and pass root= the folder holding {spec.name}/ "
        f"(load_dataset({spec.name!r}, root='FlashRAG_datasets', split={split!r}))"
    )
    if _hub_offline():
        raise DatasetUnavailableError(
            f"dataset {spec.name!r}: no root given and the Hugging Face Hub is offline "
            f"(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set); {hint}"
        )
    try:
        hf: Any = importlib.import_module("datasets")
    except ImportError as e:
        raise DatasetUnavailableError(
            f"dataset {spec.name!r}: no root given and the `datasets` library is not installed; "
            f"{hint}"
        ) from e
    try:
        rows = hf.load_dataset(HUB_REPO, spec.name, split=split)
    except Exception as e:  # network, auth, a renamed config: all mean "use a local copy"
        raise DatasetUnavailableError(
            f"dataset {spec.name!r}: could not load {HUB_REPO} ({type(e).__name__}: {e}); {hint}"
        ) from e
    source = f"hf://datasets/{HUB_REPO}/{spec.name}/{split}.jsonl"
    records = ((dict(row), f"{source}:{i + 1}") for i, row in enumerate(rows))
    return _collect(records, spec, limit, source, flashrag=True)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    split: str | None = None,
    *,
    limit: int | None = None,
) -> list[QAExample]:
    """Read one split of a benchmark as QAExamples.

    Args:
        name: ``hotpotqa``, ``2wikimultihopqa``, ``musique``, ``bamboogle``, ``nq``,
            ``triviaqa``, ``popqa`` or an alias (``2wiki``, ``hotpot``...; see :data:`DATASETS`).
        root: The folder holding FlashRAG's dataset folders (``{root}/{name}/{split}.jsonl``),
            or a folder with the original release's file, or one file. ``None``: download
            from the Hub with ``datasets`` (online only).
        split: ``train``, ``dev`` or ``test``, among those FlashRAG ships for the dataset;
            default ``dev``, or ``test`` for the test-only Bamboogle and PopQA.
        limit: Read only the first ``limit`` examples.

    Returns:
        The examples in file order; ``metadata["type"]`` set where the dataset has types.

    Raises:
        ValueError: On an unknown dataset or split, or ``limit < 1``.
        FileNotFoundError: If ``root`` holds no file for the split.
        DataFormatError: On a malformed record, naming ``file:line`` and the field.
        DatasetUnavailableError: If ``root`` is ``None`` and the Hub cannot be used.

    Example:
        >>> dev = load_dataset("hotpotqa", "FlashRAG_datasets", "dev", limit=100)  # doctest: +SKIP
        >>> dev[0].metadata["type"]  # doctest: +SKIP
        'comparison'
    """
    spec = get_spec(name)
    split = spec.default_split if split is None else split
    if split not in spec.splits:
        raise ValueError(
            f"{spec.title} has split(s) {spec.splits} in FlashRAG's release, got {split!r}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"expected limit >= 1 or None, got {limit!r}")
    if root is None:
        return _load_from_hub(spec, split, limit)
    path = find_file(spec, Path(root), split)
    return _collect(iter_records(path), spec, limit, str(path))
