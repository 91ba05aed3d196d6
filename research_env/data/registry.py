"""The registry of benchmarks: names, aliases, FlashRAG's splits, original files and parsers.

:data:`DATASETS` maps each canonical name (FlashRAG's folder name) to its :class:`DatasetSpec`;
:func:`get_spec` finds one by any name or alias.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from research_env.data.families import (
    HOTPOTQA_TYPES,
    MUSIQUE_TYPES,
    POPQA_KEPT,
    TWOWIKI_TYPES,
    Parser,
    Record,
    parse_2wikimultihopqa,
    parse_flashrag_only,
    parse_hotpotqa,
    parse_musique,
    parse_popqa,
)

HUB_REPO = "RUC-NLPIR/FlashRAG_datasets"
"""The Hugging Face dataset repository FlashRAG publishes its preprocessed benchmarks in."""


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

    parse: Parser = field(default=parse_flashrag_only, repr=False, compare=False)
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
            parse=parse_hotpotqa,
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
            parse=parse_2wikimultihopqa,
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
            parse=parse_musique,
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
            parse=parse_popqa,
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
