"""What a suite is: its tasks (question sets), its entries (leaderboard rows) and its settings.

:class:`Suite` fixes everything that makes results comparable (see :mod:`.suites` for the
built-in ones and :func:`~research_agents.eval.suites.get_suite`): its :class:`Task` list, the
env settings (:class:`~research_env.settings.EnvSettings`) and the turn settings every LLM entry
decodes with (:class:`~research_env.settings.TurnSettings`), the seed and the configured
:class:`Entry` rows. :func:`select_questions` picks a task's questions.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from research_env.data.types import QAExample
from research_env.resolve import is_dataset_file
from research_env.settings import EnvSettings, TurnSettings

__all__ = ["Entry", "Suite", "Task", "select_questions"]


@dataclass(frozen=True)
class Task:
    """One question set of a suite."""

    name: str
    """Short name in tables (``"factbook"``, ``"hotpotqa"``)."""

    dataset: str
    """``"factbook"``, a path to a FlashRAG-style ``.jsonl`` file, or, with ``root``, a
    benchmark name of :mod:`research_env.data.datasets` (``hotpotqa``, ``nq``, ...)."""

    split: str
    """Split (``train`` / ``dev`` / ``test``)."""

    size: int = 0
    """Questions, stratified over ``metadata["type"]`` (0: every question, in order)."""

    root: str | None = None
    """The folder holding the benchmark (FlashRAG's layout or the original release), read
    with :func:`research_env.data.datasets.load_dataset`."""

    def env_dataset(self) -> str | list[QAExample]:
        """The ``dataset=`` argument of the env (examples are read once per process)."""
        if self.root is None:
            if is_dataset_file(self.dataset):
                # A QA file is one split, the task's: the env gets its examples, so the task's
                # split names them instead of being refused as a split of the file.
                stat = Path(self.dataset).stat()
                return list(_load_file(str(self.dataset), stat.st_mtime_ns, stat.st_size))
            return self.dataset
        return list(_load_benchmark(self.dataset, self.root, self.split))


@lru_cache(maxsize=16)
def _load_file(path: str, mtime_ns: int, size: int) -> tuple[QAExample, ...]:
    """The examples of a QA file, read once per version of the file (mtime and size)."""
    from research_env.data.loaders import load_qa_jsonl

    return tuple(load_qa_jsonl(path))


@lru_cache(maxsize=16)
def _load_benchmark(name: str, root: str, split: str) -> tuple[QAExample, ...]:
    from research_env.data.datasets import load_dataset

    return tuple(load_dataset(name, root, split))


@dataclass(frozen=True)
class Entry:
    """One row of a leaderboard: an agent, and the model it runs when it is an LLM agent."""

    agent: str
    """An LLM agent kind (``direct``, ``naive-rag``, ``iter-retgen``, ``research``,
    ``oracle``), a rule-based one (``scripted``, ``naive-reader``) or ``module:attribute``
    naming user code (see :mod:`research_agents.eval.agents`)."""

    model: str | None = None
    """Model name (``smollm2``, ``tiny``) or local folder, for LLM kinds."""

    checkpoint: str | None = None
    """A GRPO checkpoint folder (its ``model/`` is loaded); instead of ``model``."""

    label: str | None = None
    """Name in tables and results file name (default: built from the fields above)."""

    def display(self) -> str:
        """The row's name."""
        if self.label:
            return self.label
        if self.checkpoint:
            return f"{self.agent} · {Path(self.checkpoint).parent.name or self.checkpoint}"
        return f"{self.agent} · {self.model}" if self.model else self.agent

    def slug(self) -> str:
        """A file-name-safe key for the row (``benchmarks/results/<suite>/<slug>.json``).

        >>> Entry("research", label="SmolLM2-135M + GRPO (demo)").slug()
        'smollm2-135m-grpo-demo'
        """
        return re.sub(r"[^a-z0-9]+", "-", self.display().lower()).strip("-") or "entry"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "entry") -> Entry:
        """Build from a dict; unknown keys are an error naming ``where``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(names)}"
            )
        if "agent" not in data:
            raise ValueError(f"{where}: missing 'agent'")
        return cls(**data)


@dataclass(frozen=True)
class Suite:
    """Everything that must match for results to be compared (see the module docstring)."""

    name: str
    """Registry name (``factbook``)."""

    description: str
    """One sentence for tables."""

    tasks: tuple[Task, ...]
    """The question sets."""

    env: EnvSettings = field(default_factory=EnvSettings)
    """SearchQA-v0 settings."""

    generation: TurnSettings = field(default_factory=TurnSettings)
    """Decoding settings of LLM entries."""

    seed: int = 0
    """Seeds question selection, env resets, generation and the bootstrap."""

    entries: tuple[Entry, ...] = ()
    """The leaderboard's configured rows."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError(f"suite {self.name!r}: expected at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"suite {self.name!r}: task names repeat: {names}")
        slugs = [e.slug() for e in self.entries]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"suite {self.name!r}: entry labels collide: {slugs}")

    def with_size(self, size: int) -> Suite:
        """The same suite with at most ``size`` questions per task (a smoke run).

        The question set changes, so does the protocol: such results never share a table
        with full runs.
        """
        tasks = tuple(
            dataclasses.replace(t, size=size if t.size == 0 else min(t.size, size))
            for t in self.tasks
        )
        return dataclasses.replace(self, tasks=tasks)


def select_questions(examples: Sequence[QAExample], task: Task, seed: int) -> list[int]:
    """Indices of the questions ``task`` asks: all, or ``size`` stratified by type.

    Deterministic for a given ``seed``; the same subset the GRPO evaluation draws
    (:func:`research_agents.grpo.evaluation.stratified_subset`).
    """
    from research_agents.grpo.evaluation import stratified_subset

    return stratified_subset(examples, task.size, seed)
