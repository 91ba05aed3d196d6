"""Per-dataset record parsers: one record, in FlashRAG's or the original layout, to a QAExample.

Each parser takes ``(record, "file:line", is the record in FlashRAG's layout?)`` and checks
every field it reads with :mod:`research_env.data.validation` (the same rules as every loader),
so an error names the file, the line and the field.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from research_env.data.types import QAExample
from research_env.data.validation import (
    DataFormatError,
    answers,
    example_from_record,
    fail,
    record_id,
    require,
    require_object,
    str_list,
    text,
)

Record = dict[str, Any]
Parser = Callable[[Record, str, bool], QAExample]
"""(record, "file:line", is the record in FlashRAG's layout?) -> QAExample."""


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
            raise fail(where, name, f"a list or an object of lists {keys}", value)
        columns = [value[k] for k in keys]
        if len({len(c) for c in columns}) > 1:
            lengths = {k: len(value[k]) for k in keys}
            raise fail(where, name, "columns of equal length", lengths)
        return list(zip(*columns))
    if isinstance(value, list) and all(
        isinstance(row, list | tuple) and len(row) == len(keys) for row in value
    ):
        return [tuple(row) for row in value]
    raise fail(where, name, f"a list of {list(keys)} rows or an object of lists", value)


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
            raise fail(where, f"{name}[{i}] title", "a string", title)
        out.append([title, str_list(sentences, where, f"{name}[{i}] sentences")])
    return out


def _supporting_facts(value: Any, where: str, name: str) -> list[list[Any]]:
    """``[[title, sentence index], ...]``, from that layout or the Hub's columnar one."""
    rows = _columns(value, ("title", "sent_id"), where, name)
    for i, (title, sent_id) in enumerate(rows):
        if not isinstance(title, str) or isinstance(sent_id, bool) or not isinstance(sent_id, int):
            raise fail(
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
    return example_from_record(record, where)  # checks id, question, golden_answers, metadata


def _original(record: Any, where: str, keys: tuple[str, ...], layout: str) -> QAExample:
    """A QAExample from an original-layout record: ``keys`` are (id, question, answer)."""
    record = require_object(record, where)
    require(record, keys, where, layout)
    id_key, question_key, answer_key = keys
    question = text(record[question_key], where, question_key)
    answer = answers(record[answer_key], where, answer_key)
    return QAExample(record_id(record[id_key], where, id_key), question, answer, {})


# ---------------------------------------------------------------------------------------------
# Per-dataset parsers: one record (FlashRAG or original layout) -> QAExample.

HOTPOTQA_TYPES = ("bridge", "comparison")
HOTPOTQA_LEVELS = ("easy", "medium", "hard")
TWOWIKI_TYPES = ("comparison", "inference", "compositional", "bridge_comparison")
MUSIQUE_TYPES = ("2hop", "3hop", "4hop")
_MUSIQUE_ID_HOPS = re.compile(r"^(\d)hop")


def _wiki_multihop(
    record: Record, where: str, flashrag: bool, dataset: str, label: str, types: tuple[str, ...]
) -> tuple[QAExample, Mapping[str, Any], str, dict[str, Any]]:
    """What HotpotQA and 2WikiMultiHopQA records share: the example and its ``type``.

    Args:
        record: The record.
        where: ``"file:line"``.
        flashrag: Whether the record is in FlashRAG's layout.
        dataset: The dataset's name in error messages (``"hotpotqa"``).
        label: Its name in the original layout's error messages (``"HotpotQA"``).
        types: The allowed ``type`` values.

    Returns:
        The example, where the dataset's own fields live, their path prefix, and the metadata
        so far (the example's, plus ``type``).
    """
    keys = ("_id", "question", "answer")
    example = (
        _flashrag(record, where)
        if flashrag
        else _original(record, where, keys, f"{label} original layout")
    )
    src, p = _source(record, flashrag)
    meta = dict(example.metadata)
    if "type" in src:
        meta["type"] = _choice(src["type"], types, where, p + "type", dataset)
    return example, src, p, meta


def _facts_and_context(meta: dict[str, Any], src: Mapping[str, Any], where: str, p: str) -> None:
    """Add HotpotQA-style ``supporting_facts`` and ``context`` paragraphs to ``meta``."""
    if "supporting_facts" in src:
        sf = _supporting_facts(src["supporting_facts"], where, p + "supporting_facts")
        meta["supporting_facts"] = sf
    if "context" in src:
        meta["context"] = _context(src["context"], where, p + "context")


def parse_hotpotqa(record: Record, where: str, flashrag: bool) -> QAExample:
    """HotpotQA: type, level, supporting facts and context paragraphs."""
    example, src, p, meta = _wiki_multihop(
        record, where, flashrag, "hotpotqa", "HotpotQA", HOTPOTQA_TYPES
    )
    if "level" in src:
        meta["level"] = _choice(src["level"], HOTPOTQA_LEVELS, where, p + "level", "hotpotqa")
    _facts_and_context(meta, src, where, p)
    return replace(example, metadata=meta)


def _evidences(value: Any, where: str, name: str) -> list[list[str]]:
    """2Wiki's evidence triples ``[[subject, relation, object], ...]``."""
    rows = _columns(value, ("fact", "relation", "entity"), where, name)
    for i, row in enumerate(rows):
        if not all(isinstance(part, str) for part in row):
            raise fail(where, f"{name}[{i}]", "[subject, relation, object] strings", list(row))
    return [list(row) for row in rows]


def parse_2wikimultihopqa(record: Record, where: str, flashrag: bool) -> QAExample:
    """2WikiMultiHopQA: type, supporting facts, context and evidence triples."""
    example, src, p, meta = _wiki_multihop(
        record, where, flashrag, "2wikimultihopqa", "2Wiki", TWOWIKI_TYPES
    )
    _facts_and_context(meta, src, where, p)
    if "evidences" in src:
        meta["evidences"] = _evidences(src["evidences"], where, p + "evidences")
    return replace(example, metadata=meta)


def parse_musique(record: Record, where: str, flashrag: bool) -> QAExample:
    """MuSiQue: answer aliases, hop count (type), answerability and paragraphs."""
    if flashrag:
        example = _flashrag(record, where)
    else:
        example = _original(record, where, ("id", "question", "answer"), "MuSiQue original layout")
        aliases = str_list(record.get("answer_aliases", []), where, "answer_aliases")
        if aliases:
            aliases = answers(aliases, where, "answer_aliases")
        golden = list(dict.fromkeys([*example.golden_answers, *aliases]))
        example = replace(example, golden_answers=golden)
    src, p = _source(record, flashrag)
    meta = dict(example.metadata)
    hops: int | None = None
    if "question_decomposition" in src:
        steps = src["question_decomposition"]
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            raise fail(where, p + "question_decomposition", "a non-empty list of objects", steps)
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
            raise fail(where, p + "answerable", "true or false", src["answerable"])
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
            raise fail(
                where, p + "paragraphs", "a list of {title, paragraph_text} objects", paragraphs
            )
        meta["context"] = [{k: x[k] for k in keys if k in x} for x in paragraphs]
    return replace(example, metadata=meta)


def _parse_answer_list(value: Any, where: str, name: str) -> list[str]:
    """PopQA's ``possible_answers`` cell: a JSON (or Python) list of strings, as text."""
    cell = value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise fail(where, name, "a list of strings (JSON)", cell) from None
        except RecursionError:
            raise fail(where, name, "a flat list of strings (nested too deeply)", cell) from None
    if isinstance(value, str) or not isinstance(value, list):
        raise fail(where, name, "a list of strings (JSON)", cell)
    return answers(value, where, name)


def _int_or_none(value: Any, where: str, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise fail(where, name, "an integer", value) from None


POPQA_KEPT = ("subj", "prop", "obj", "s_wiki_title", "o_wiki_title")


def parse_popqa(record: Record, where: str, flashrag: bool) -> QAExample:
    """PopQA: the possible-answers cell, the relation (type) and popularity counts."""
    if flashrag:
        example = _flashrag(record, where)
        prop = example.metadata.get("prop")
        if isinstance(prop, str) and prop:
            return replace(example, metadata={**example.metadata, "type": prop})
        return example
    require(record, ("id", "question", "possible_answers"), where, "PopQA original layout")
    question = text(record["question"], where, "question")
    golden = _parse_answer_list(record["possible_answers"], where, "possible_answers")
    meta: dict[str, Any] = {k: record[k] for k in POPQA_KEPT if record.get(k)}
    for key in ("s_pop", "o_pop"):
        pop = _int_or_none(record.get(key), where, key)
        if pop is not None:
            meta[key] = pop
    if "prop" in meta:
        meta["type"] = meta["prop"]
    return QAExample(record_id(record["id"], where), question, golden, meta)


def parse_flashrag_only(record: Record, where: str, flashrag: bool) -> QAExample:
    """A benchmark FlashRAG alone ships (NQ, TriviaQA, Bamboogle): its record as is."""
    return _flashrag(record, where)
