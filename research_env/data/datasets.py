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

import ast
import csv
import importlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from research_env.data.loaders import DataFormatError, _example_from_record
from research_env.data.types import QAExample

__all__ = [
    "DATASETS",
    "HUB_REPO",
    "DatasetSpec",
    "DatasetUnavailableError",
    "find_file",
    "get_spec",
    "load_dataset",
]

HUB_REPO = "RUC-NLPIR/FlashRAG_datasets"
"""The Hugging Face dataset repository FlashRAG publishes its preprocessed benchmarks in."""

Record = dict[str, Any]
Parser = Callable[[Record, str, bool], QAExample]
"""(record, "file:line", is the record in FlashRAG's layout?) -> QAExample."""


class DatasetUnavailableError(RuntimeError):
    """A dataset cannot be read: no local copy was given and the Hub cannot be reached."""


# ---------------------------------------------------------------------------------------------
# Field checks shared by the parsers. ``where`` is "file:line"; ``name`` the field's dotted path.


def _fail(where: str, name: str, expected: str, got: Any) -> DataFormatError:
    text = repr(got)
    if len(text) > 80:
        text = text[:77] + "..."
    return DataFormatError(f"{where}: field {name!r} must be {expected}, got {text}")


def _require(record: Record, keys: tuple[str, ...], where: str, layout: str) -> None:
    for key in keys:
        if key not in record:
            raise DataFormatError(
                f"{where}: missing field {key!r} ({layout}; have {sorted(record)})"
            )


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, name, "a non-empty string", value)
    return value


def _str_list(value: Any, where: str, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, name, "a list of strings", value)
    return list(value)


def _answers(first: str, more: list[str]) -> list[str]:
    """``first`` then ``more``, duplicates and blanks dropped, order kept."""
    return list(dict.fromkeys(a for a in [first, *more] if a.strip()))


def _choice(value: Any, allowed: tuple[str, ...], where: str, name: str, dataset: str) -> str:
    if value not in allowed:
        raise DataFormatError(
            f"{where}: field {name!r} must be one of {allowed} for {dataset}, got {value!r} "
            "(is this file from another dataset?)"
        )
    return str(value)


def _columns(value: Any, keys: tuple[str, ...], where: str, name: str) -> list[tuple[Any, ...]]:
    """Rows of ``value``: a list of k-lists, or the Hub's columnar ``{key: [...], ...}``."""
    if isinstance(value, dict):
        if not all(isinstance(value.get(k), list) for k in keys):
            raise _fail(where, name, f"a list or an object of lists {keys}", value)
        columns = [value[k] for k in keys]
        if len({len(c) for c in columns}) > 1:
            lengths = {k: len(value[k]) for k in keys}
            raise _fail(where, name, "columns of equal length", lengths)
        return list(zip(*columns))
    if isinstance(value, list) and all(
        isinstance(row, list | tuple) and len(row) == len(keys) for row in value
    ):
        return [tuple(row) for row in value]
    raise _fail(where, name, f"a list of {list(keys)} rows or an object of lists", value)


def _context(value: Any, where: str, name: str) -> list[list[Any]]:
    """Paragraphs as ``[[title, [sentence, ...]], ...]`` (HotpotQA's own layout).

    Accepts that layout and the Hub's ``{"title": [...], "sentences": [[...], ...]}``
    (HotpotQA) or ``{"title": [...], "content": [[...], ...]}`` (2WikiMultiHopQA).
    """
    if isinstance(value, dict) and "sentences" not in value and "content" in value:
        value = {"title": value.get("title"), "sentences": value["content"]}
    rows = _columns(value, ("title", "sentences"), where, name)
    out: list[list[Any]] = []
    for i, (title, sentences) in enumerate(rows):
        if not isinstance(title, str):
            raise _fail(where, f"{name}[{i}] title", "a string", title)
        out.append([title, _str_list(sentences, where, f"{name}[{i}] sentences")])
    return out


def _supporting_facts(value: Any, where: str, name: str) -> list[list[Any]]:
    """``[[title, sentence index], ...]``, from that layout or the Hub's columnar one."""
    rows = _columns(value, ("title", "sent_id"), where, name)
    for i, (title, sent_id) in enumerate(rows):
        if not isinstance(title, str) or isinstance(sent_id, bool) or not isinstance(sent_id, int):
            raise _fail(
                where, f"{name}[{i}]", "[title (str), sentence index (int)]", [title, sent_id]
            )
    return [[title, sent_id] for title, sent_id in rows]


def _source(record: Record, flashrag: bool) -> tuple[Mapping[str, Any], str]:
    """Where a dataset's own fields live: ``metadata`` in FlashRAG records, else the record."""
    if not flashrag:
        return record, ""
    metadata = record.get("metadata") or {}
    # The Hub's Arrow tables fill fields a row lacks with None: treat those as absent.
    return {k: v for k, v in metadata.items() if v is not None}, "metadata."


def _flashrag(record: Record, where: str) -> QAExample:
    return _example_from_record(record, where)  # checks id, question, golden_answers, metadata


def _original(record: Any, where: str, keys: tuple[str, ...], layout: str) -> QAExample:
    """A QAExample from an original-layout record: ``keys`` are (id, question, answer)."""
    if not isinstance(record, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    _require(record, keys, where, layout)
    id_key, question_key, answer_key = keys
    question = _text(record[question_key], where, question_key)
    answer = _text(record[answer_key], where, answer_key)
    return QAExample(str(record[id_key]), question, [answer], {})


# ---------------------------------------------------------------------------------------------
# Per-dataset parsers: one record (FlashRAG or original layout) -> QAExample.

HOTPOTQA_TYPES = ("bridge", "comparison")
HOTPOTQA_LEVELS = ("easy", "medium", "hard")
TWOWIKI_TYPES = ("comparison", "inference", "compositional", "bridge_comparison")
MUSIQUE_TYPES = ("2hop", "3hop", "4hop")
_MUSIQUE_ID_HOPS = re.compile(r"^(\d)hop")


def _parse_hotpotqa(record: Record, where: str, flashrag: bool) -> QAExample:
    example = (
        _flashrag(record, where)
        if flashrag
        else _original(record, where, ("_id", "question", "answer"), "HotpotQA original layout")
    )
    src, p = _source(record, flashrag)
    meta = dict(example.metadata)
    if "type" in src:
        meta["type"] = _choice(src["type"], HOTPOTQA_TYPES, where, p + "type", "hotpotqa")
    if "level" in src:
        meta["level"] = _choice(src["level"], HOTPOTQA_LEVELS, where, p + "level", "hotpotqa")
    if "supporting_facts" in src:
        sf = _supporting_facts(src["supporting_facts"], where, p + "supporting_facts")
        meta["supporting_facts"] = sf
    if "context" in src:
        meta["context"] = _context(src["context"], where, p + "context")
    return replace(example, metadata=meta)


def _evidences(value: Any, where: str, name: str) -> list[list[str]]:
    """2Wiki's evidence triples ``[[subject, relation, object], ...]``."""
    rows = _columns(value, ("fact", "relation", "entity"), where, name)
    for i, row in enumerate(rows):
        if not all(isinstance(part, str) for part in row):
            raise _fail(where, f"{name}[{i}]", "[subject, relation, object] strings", list(row))
    return [list(row) for row in rows]


def _parse_2wikimultihopqa(record: Record, where: str, flashrag: bool) -> QAExample:
    example = (
        _flashrag(record, where)
        if flashrag
        else _original(record, where, ("_id", "question", "answer"), "2Wiki original layout")
    )
    src, p = _source(record, flashrag)
    meta = dict(example.metadata)
    if "type" in src:
        meta["type"] = _choice(src["type"], TWOWIKI_TYPES, where, p + "type", "2wikimultihopqa")
    if "supporting_facts" in src:
        sf = _supporting_facts(src["supporting_facts"], where, p + "supporting_facts")
        meta["supporting_facts"] = sf
    if "context" in src:
        meta["context"] = _context(src["context"], where, p + "context")
    if "evidences" in src:
        meta["evidences"] = _evidences(src["evidences"], where, p + "evidences")
    return replace(example, metadata=meta)


def _parse_musique(record: Record, where: str, flashrag: bool) -> QAExample:
    if flashrag:
        example = _flashrag(record, where)
    else:
        example = _original(record, where, ("id", "question", "answer"), "MuSiQue original layout")
        aliases = _str_list(record.get("answer_aliases", []), where, "answer_aliases")
        example = replace(example, golden_answers=_answers(example.golden_answers[0], aliases))
    src, p = _source(record, flashrag)
    meta = dict(example.metadata)
    hops: int | None = None
    if "question_decomposition" in src:
        steps = src["question_decomposition"]
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            raise _fail(where, p + "question_decomposition", "a non-empty list of objects", steps)
        meta["question_decomposition"] = steps
        hops = len(steps)
    else:  # MuSiQue ids name the hop count: 2hop__..., 3hop1__..., 4hop3__...
        match = _MUSIQUE_ID_HOPS.match(example.id)
        hops = int(match.group(1)) if match else None
    if hops is not None:
        meta["hops"] = hops
        meta["type"] = _choice(
            f"{hops}hop", MUSIQUE_TYPES, where, p + "question_decomposition", "musique"
        )
    if "answerable" in src:
        if not isinstance(src["answerable"], bool):
            raise _fail(where, p + "answerable", "true or false", src["answerable"])
        meta["answerable"] = src["answerable"]
    if "paragraphs" in src:
        paragraphs = src["paragraphs"]
        keys = ("idx", "title", "paragraph_text", "is_supporting")
        if not isinstance(paragraphs, list) or not all(
            isinstance(x, dict)
            and isinstance(x.get("title"), str)
            and isinstance(x.get("paragraph_text"), str)
            for x in paragraphs
        ):
            raise _fail(
                where, p + "paragraphs", "a list of {title, paragraph_text} objects", paragraphs
            )
        meta["context"] = [{k: x[k] for k in keys if k in x} for x in paragraphs]
    return replace(example, metadata=meta)


def _parse_answer_list(value: Any, where: str, name: str) -> list[str]:
    """PopQA's ``possible_answers`` cell: a JSON (or Python) list of strings, as text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise _fail(where, name, "a list of strings (JSON)", value) from None
    answers = _str_list(value, where, name)
    answers = [a for a in dict.fromkeys(answers) if a.strip()]
    if not answers:
        raise _fail(where, name, "a non-empty list of strings", value)
    return answers


def _int_or_none(value: Any, where: str, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _fail(where, name, "an integer", value) from None


POPQA_KEPT = ("subj", "prop", "obj", "s_wiki_title", "o_wiki_title")


def _parse_popqa(record: Record, where: str, flashrag: bool) -> QAExample:
    if flashrag:
        example = _flashrag(record, where)
        prop = example.metadata.get("prop")
        if isinstance(prop, str) and prop:
            return replace(example, metadata={**example.metadata, "type": prop})
        return example
    _require(record, ("id", "question", "possible_answers"), where, "PopQA original layout")
    question = _text(record["question"], where, "question")
    answers = _parse_answer_list(record["possible_answers"], where, "possible_answers")
    meta: dict[str, Any] = {k: record[k] for k in POPQA_KEPT if record.get(k)}
    for key in ("s_pop", "o_pop"):
        pop = _int_or_none(record.get(key), where, key)
        if pop is not None:
            meta[key] = pop
    if "prop" in meta:
        meta["type"] = meta["prop"]
    return QAExample(str(record["id"]), question, answers, meta)


def _parse_flashrag_only(record: Record, where: str, flashrag: bool) -> QAExample:
    return _flashrag(record, where)


# ---------------------------------------------------------------------------------------------
# The registry.


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark: its names, FlashRAG's splits, and how its records are read."""

    name: str
    """Canonical name: FlashRAG's folder name and Hub config name (``"2wikimultihopqa"``)."""

    title: str
    """Display name (``"2WikiMultiHopQA"``)."""

    aliases: tuple[str, ...]
    """Other accepted names; matching ignores case, ``-``, ``_`` and spaces."""

    splits: tuple[str, ...]
    """The splits FlashRAG ships (``{root}/{name}/{split}.jsonl``), default first."""

    types: tuple[str, ...]
    """Every ``metadata["type"]`` value (empty: the dataset has no types, or they are open)."""

    type_source: str | None
    """Where ``metadata["type"]`` comes from, or ``None`` when it is never set."""

    metadata: tuple[str, ...]
    """The metadata keys this loader normalises (FlashRAG records keep any other key as is)."""

    original_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Split -> file names of the original release, looked for when FlashRAG's is absent."""

    original_key: str | None = None
    """A field only the original layout's records have (``"_id"``, ``"possible_answers"``):
    a file whose first record has it and no ``golden_answers`` is read as the original."""

    parse: Parser = field(default=_parse_flashrag_only, repr=False, compare=False)
    """Turns one record and its ``file:line`` into a QAExample, in the layout it is told."""

    def is_original(self, record: Record) -> bool:
        """Whether ``record`` is in the original release's layout rather than FlashRAG's."""
        return (
            self.original_key is not None
            and self.original_key in record
            and "golden_answers" not in record
        )

    @property
    def default_split(self) -> str:
        """``"dev"`` where FlashRAG ships it, else the first split (``"test"``)."""
        return "dev" if "dev" in self.splits else self.splits[0]


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="hotpotqa",
            title="HotpotQA",
            aliases=("hotpot", "hotpot_qa"),
            splits=("train", "dev"),
            types=HOTPOTQA_TYPES,
            type_source="the question's type field",
            metadata=("type", "level", "supporting_facts", "context"),
            original_files={
                "train": ("hotpot_train_v1.1.json",),
                "dev": ("hotpot_dev_distractor_v1.json", "hotpot_dev_fullwiki_v1.json"),
            },
            original_key="_id",
            parse=_parse_hotpotqa,
        ),
        DatasetSpec(
            name="2wikimultihopqa",
            title="2WikiMultiHopQA",
            aliases=("2wiki", "2wikimqa", "2wikimultihop", "twowiki"),
            splits=("train", "dev"),
            types=TWOWIKI_TYPES,
            type_source="the question's type field",
            metadata=("type", "supporting_facts", "context", "evidences"),
            original_files={"train": ("train.json",), "dev": ("dev.json",)},
            original_key="_id",
            parse=_parse_2wikimultihopqa,
        ),
        DatasetSpec(
            name="musique",
            title="MuSiQue",
            aliases=("musique_ans",),
            splits=("train", "dev"),
            types=MUSIQUE_TYPES,
            type_source="hop count: question_decomposition steps (else the id prefix)",
            metadata=("type", "hops", "answerable", "question_decomposition", "context"),
            original_files={
                "train": ("musique_ans_v1.0_train.jsonl", "musique_full_v1.0_train.jsonl"),
                "dev": ("musique_ans_v1.0_dev.jsonl", "musique_full_v1.0_dev.jsonl"),
            },
            original_key="answer",
            parse=_parse_musique,
        ),
        DatasetSpec(
            name="bamboogle",
            title="Bamboogle",
            aliases=(),
            splits=("test",),
            types=(),
            type_source=None,
            metadata=(),
        ),
        DatasetSpec(
            name="nq",
            title="Natural Questions",
            aliases=("natural_questions", "nq_open"),
            splits=("train", "dev", "test"),
            types=(),
            type_source=None,
            metadata=(),
        ),
        DatasetSpec(
            name="triviaqa",
            title="TriviaQA",
            aliases=("trivia_qa", "tqa"),
            splits=("train", "dev", "test"),
            types=(),
            type_source=None,
            metadata=(),
        ),
        DatasetSpec(
            name="popqa",
            title="PopQA",
            aliases=("pop_qa",),
            splits=("test",),
            types=(),  # open set: the Wikidata relation (occupation, place of birth, ...)
            type_source="the relation (prop), e.g. 'occupation'",
            metadata=("type", *POPQA_KEPT, "s_pop", "o_pop"),
            original_files={"test": ("popQA.tsv",)},
            original_key="possible_answers",
            parse=_parse_popqa,
        ),
    )
}
"""The benchmarks of Search-R1 / ReSearch, by canonical (FlashRAG folder) name."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


_BY_KEY = {_key(n): spec for spec in DATASETS.values() for n in (spec.name, *spec.aliases)}


def get_spec(name: str) -> DatasetSpec:
    """The spec named ``name`` (canonical name or alias, any case).

    >>> get_spec("2WikiMultiHopQA").name
    '2wikimultihopqa'

    Raises:
        ValueError: If no dataset has that name.
    """
    spec = _BY_KEY.get(_key(name))
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return spec


# ---------------------------------------------------------------------------------------------
# Reading files.

_WS = re.compile(r"\s*")


def _iter_jsonl(path: Path) -> Iterator[tuple[Any, str]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield json.loads(line), where
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e


def _iter_json_list(path: Path) -> Iterator[tuple[Any, str]]:
    """The elements of a JSON list file, each with ``file:line (record n)`` of where it starts."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", i):
        line = text.count("\n", 0, i) + 1
        raise DataFormatError(f"{path}:{line}: expected a JSON list of records")
    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    line, counted, n = 1, 0, 0
    if text.startswith("]", i):
        return
    while True:
        line += text.count("\n", counted, i)
        counted = i
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataFormatError(
                f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})"
            ) from e
        yield value, f"{path}:{line} (record {n})"
        n += 1
        i = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", i):
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", i):
            return
        else:
            at = text.count("\n", 0, i) + 1
            raise DataFormatError(f"{path}:{at}: invalid JSON (expected ',' or ']' after a record)")


def _iter_tsv(path: Path) -> Iterator[tuple[Any, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for row in reader:
            yield dict(row), f"{path}:{reader.line_num}"


def _iter_file(path: Path) -> Iterator[tuple[Any, str]]:
    if path.suffix == ".tsv":
        return _iter_tsv(path)
    if path.suffix == ".json":
        return _iter_json_list(path)
    return _iter_jsonl(path)


def _collect(
    records: Iterator[tuple[Any, str]],
    spec: DatasetSpec,
    limit: int | None,
    source: str,
    flashrag: bool | None = None,
) -> list[QAExample]:
    """Parse ``records``; the layout (``flashrag``) is the first record's unless given."""
    examples: list[QAExample] = []
    seen: dict[str, str] = {}
    for record, where in records:
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if flashrag is None:
            flashrag = not spec.is_original(record)
        example = spec.parse(record, where, flashrag)
        if example.id in seen:
            raise DataFormatError(
                f"{where}: duplicate id {example.id!r} (first seen at {seen[example.id]})"
            )
        seen[example.id] = where
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
    return _collect(_iter_file(path), spec, limit, str(path))
