"""The built-in evaluation suites: which questions, under which settings, and their entries.

A :class:`Suite` (defined with :class:`Task` and :class:`Entry` in :mod:`.suite_types`)
fixes everything that makes results comparable: its tasks (dataset, split, how many questions
and how they are picked), the env settings (retriever, ``top_k``, turn budget, template,
reward) and the turn settings every LLM entry decodes with. Agents differ; suites do not.
The built-in suites (:data:`SUITES`, :func:`get_suite`):

``factbook``
    96 questions of the embedded Factbook world's *test* split, stratified over all seven
    question types (``stratified_subset(test, 96, seed=0)``: the 96 of docs/results.md), under
    the ``factbook-smollm2`` GRPO preset's settings, so the trained checkpoint is evaluated as
    it was trained: template ``research_compact``, BM25 top-3, 2 turns (the last must answer),
    32 tokens per turn, ``<search>`` forced at the start of the response and ``<answer>`` at the
    start of the last turn. Two turns allow one search, so questions needing two or more hops
    are out of reach for an agent that searches once per hop (the scripted reference shows the
    ceiling), and Iter-RetGen gets one round (it then plays as naive RAG). With a third turn the
    trained checkpoint, which always had ``<answer>`` forced on its second turn, never closes a
    tag on that turn. Its entries are the leaderboard in ``benchmarks/LEADERBOARD.md``.
``factbook-dev``
    The same settings on all 181 dev questions.
``factbook-multihop``
    The same 96 test questions and settings with **4 turns** (the last must answer), BM25
    top-4 and 1000 response tokens: room for one search per hop on every type (three-hop:
    three searches, then the answer). ``<search>`` is forced on the first turn and the boxed
    answer prefix on the last, as in ``factbook``; on turns 2-3 the agent chooses between
    another search and an answer; an action without a closed tag gets a corrective
    observation instead of ending the episode. The
    ``factbook-smollm2-multihop`` GRPO preset trains under it; Iter-RetGen gets two rounds.
    Its entries are the second section of ``benchmarks/LEADERBOARD.md``.
``factbook-multihop-dev``
    The 4-turn settings on all 181 dev questions.
``factbook-multihop-boxed``
    ``factbook-multihop`` with the ``factbook-smollm2-multihop-boxed`` preset's two changes:
    results end with a line naming their countries (``research_hops_titles``), and an answer
    the agent opens itself on turns 2-3 (``<answer>``) gets the boxed opening forced after the tag
    (``answer_continuation``), as the last turn's prefix opens it. So an answer given before
    the last turn is scored like one given on it. The boxed presets train under it.
``factbook-multihop-boxed-dev``
    The same settings on all 181 dev questions.
``research-paper``
    ReSearch's evaluation (arXiv 2503.19470): HotpotQA, 2WikiMultiHopQA and MuSiQue dev sets
    and Bamboogle test, in full, E5 top-5 over wiki-18 (served, e.g. by ``searchqa serve``),
    template ``research_instruct``, ``protocol="research"`` (ReSearch's stop rule, result
    blocks, answer extraction and reward; docs/fidelity.md), up to 8192 response tokens.
``searchr1-paper``
    Search-R1's evaluation (arXiv 2503.09516): NQ, TriviaQA, PopQA test, HotpotQA, 2Wiki,
    MuSiQue dev and Bamboogle test, E5 top-3, template ``searchr1``, ``protocol="searchr1"``
    (EM, 4 search turns of up to 500 tokens and a final turn without search, corrective
    observations after invalid actions).

The paper suites read the user's copies of the datasets with
:func:`research_env.data.datasets.load_dataset` (FlashRAG's layout,
``<data_dir>/<dataset>/<split>.jsonl``, or the original releases) and a retriever spec (default:
a ``searchqa serve`` server on ``127.0.0.1:8000``); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from research_agents.eval.suite_types import Entry, Suite, Task, select_questions
from research_env.retrieval.base import Retriever
from research_env.settings import EnvSettings, TurnSettings

__all__ = [
    "SUITES",
    "Entry",
    "Suite",
    "Task",
    "get_suite",
    "select_questions",
]


# --------------------------------------------------------------------------------- registry
def _preset_settings(name: str) -> tuple[EnvSettings, TurnSettings]:
    """A GRPO preset's env and turn settings, as a suite plays them (greedy, EM-scored env).

    The suite takes them from the preset rather than restating them, so the checkpoint is
    evaluated exactly as it was trained. The env's reward is ``"em"`` whatever the preset
    trained on: the reported EM and F1 do not depend on it, but the protocol hash does.
    """
    from research_agents.grpo.presets import get_preset

    preset = get_preset(name)
    return preset.env_settings(reward="em"), preset.turn_settings()


SMOLLM2 = "SmolLM2-135M"
FACTBOOK_CHECKPOINT = "runs/factbook-smollm2/checkpoint"
"""Where ``searchqa train --preset factbook-smollm2`` leaves its checkpoint."""
DEMO_CHECKPOINT = "runs/demo/checkpoint"
"""Where ``make demo`` (7 minutes of the same preset) leaves its checkpoint."""

_FACTBOOK_ENTRIES = (
    Entry("direct", model="smollm2", label=f"{SMOLLM2} direct (no retrieval)"),
    Entry("naive-rag", model="smollm2", label=f"{SMOLLM2} naive RAG"),
    # Two turns leave Iter-RetGen one retrieval round: it then plays exactly as naive RAG.
    Entry("iter-retgen", model="smollm2", label=f"{SMOLLM2} Iter-RetGen (1 round)"),
    Entry("research", model="smollm2", label=f"{SMOLLM2} ReSearch prompt, zero-shot"),
    Entry("oracle", model="smollm2", label=f"{SMOLLM2} oracle passages"),
    Entry(
        "research",
        checkpoint=FACTBOOK_CHECKPOINT,
        label=f"{SMOLLM2} + GRPO (factbook-smollm2, 30 min)",
    ),
    Entry("research", checkpoint=DEMO_CHECKPOINT, label=f"{SMOLLM2} + GRPO (make demo, 7 min)"),
    Entry("scripted", label="scripted rules, one search per hop (no model)"),
    Entry("naive-reader", label="naive reader rules, one search (no model)"),
)


# The multi-hop suite plays the factbook-smollm2-multihop preset's settings (its comments say
# why each differs from the 2-turn ones: top-4, corrective observations, research_hops, "<").
MULTIHOP_CHECKPOINT = "runs/factbook-smollm2-multihop/checkpoint"
"""Where ``searchqa train --preset factbook-smollm2-multihop`` leaves its checkpoint."""
MULTIHOP_BRIDGE_CHECKPOINT = "runs/factbook-smollm2-multihop-bridge/checkpoint"
"""Where ``searchqa train --preset factbook-smollm2-multihop-bridge`` leaves its checkpoint
(trained with the titles line; played here under the suite's ``research_hops`` prompt)."""

_MULTIHOP_ENTRIES = (
    *(
        dataclasses.replace(e, label=f"{SMOLLM2} Iter-RetGen (2 rounds)")
        if e.agent == "iter-retgen"
        else dataclasses.replace(e, label=f"{SMOLLM2} research_hops prompt, zero-shot")
        if e.agent == "research" and e.model == "smollm2"
        else e
        for e in _FACTBOOK_ENTRIES
    ),
    Entry(
        "research",
        checkpoint=MULTIHOP_CHECKPOINT,
        label=f"{SMOLLM2} + GRPO (factbook-smollm2-multihop, 2 stages, 23 min)",
    ),
    Entry(
        "research",
        checkpoint=MULTIHOP_BRIDGE_CHECKPOINT,
        label=f"{SMOLLM2} + GRPO (factbook-smollm2-multihop-bridge, 2 stages, 30 stage-2 steps)",
    ),
)


def _factbook_multihop(split: str = "test", size: int = 96, **_: Any) -> Suite:
    base = _factbook(split, size)
    env, generation = _preset_settings("factbook-smollm2-multihop")
    return dataclasses.replace(
        base,
        name="factbook-multihop" if split == "test" else f"factbook-multihop-{split}",
        description=base.description + ", 4 turns",
        env=env,
        generation=generation,
        entries=_MULTIHOP_ENTRIES,
    )


STAGE1_CHECKPOINT = "runs/factbook-smollm2-multihop-stage1/checkpoint"
"""Where ``searchqa train --preset factbook-smollm2-multihop-stage1`` leaves its checkpoint."""
BOXED_CHECKPOINT = "runs/factbook-smollm2-multihop-boxed/checkpoint"
"""Where ``searchqa train --preset factbook-smollm2-multihop-boxed`` leaves its checkpoint."""
_BOXED_ENTRIES = (
    Entry("research", model="smollm2", label=f"{SMOLLM2} research_hops_titles prompt, zero-shot"),
    Entry(
        "research", checkpoint=STAGE1_CHECKPOINT, label=f"{SMOLLM2} + GRPO stage 1 only (2 turns)"
    ),
    Entry(
        "research",
        checkpoint=BOXED_CHECKPOINT,
        label=f"{SMOLLM2} + GRPO (factbook-smollm2-multihop-boxed, stage 1 + 30 steps)",
    ),
    Entry("scripted", label="scripted rules, one search per hop (no model)"),
    Entry("naive-reader", label="naive reader rules, one search (no model)"),
)


def _factbook_multihop_boxed(split: str = "test", size: int = 96, **_: Any) -> Suite:
    base = _factbook(split, size)
    env, generation = _preset_settings("factbook-smollm2-multihop-boxed")
    return dataclasses.replace(
        base,
        name="factbook-multihop-boxed" if split == "test" else f"factbook-multihop-boxed-{split}",
        description=base.description + ", 4 turns, an answer opened mid-episode is boxed",
        env=env,
        generation=generation,
        entries=_BOXED_ENTRIES,
    )


def _factbook(split: str = "test", size: int = 96, **_: Any) -> Suite:
    env, generation = _preset_settings("factbook-smollm2")
    return Suite(
        name="factbook" if split == "test" else f"factbook-{split}",
        description=(
            f"Factbook world, {split} split"
            + (f", {size} questions stratified over 7 types" if size else ", all questions")
        ),
        tasks=(Task("factbook", "factbook", split, size),),
        env=env,
        generation=generation,
        seed=0,
        entries=_FACTBOOK_ENTRIES,
    )


def _flashrag_tasks(
    data_dir: str | Path | None,
    names: Sequence[tuple[str, str]],
    only: Sequence[str] | None = None,
) -> list[Task]:
    """The suite's tasks read from ``data_dir``.

    With ``only``, just those tasks, and only their files need to be there.
    """
    if only:
        names = [(name, split) for name, split in names if name in only]
    if data_dir is None:
        raise ValueError(
            "this suite reads your copies of the datasets: pass data_dir (--data-dir), the "
            "folder in FlashRAG's layout, <data_dir>/<dataset>/<split>.jsonl"
        )
    from research_env.data.datasets import find_file, get_spec

    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir: no folder at {root}")
    for name, split in names:
        find_file(get_spec(name), root, split)  # a clear error now rather than mid-run
    return [Task(name, name, split, 0, root=str(root)) for name, split in names]


RESEARCH_PAPER_TASKS: tuple[tuple[str, str], ...] = (
    ("hotpotqa", "dev"),
    ("2wikimultihopqa", "dev"),
    ("musique", "dev"),
    ("bamboogle", "test"),
)
"""ReSearch's evaluation datasets and the split of each."""

SEARCHR1_PAPER_TASKS: tuple[tuple[str, str], ...] = (
    ("nq", "test"),
    ("triviaqa", "test"),
    ("popqa", "test"),
    *RESEARCH_PAPER_TASKS,
)
"""Search-R1's evaluation datasets and the split of each."""

DEFAULT_PAPER_RETRIEVER = "remote:http://127.0.0.1:8000"
"""A ``searchqa serve`` (or ReSearch-protocol) server with E5 over wiki-18."""


def _research_paper(
    data_dir: str | Path | None = None,
    retriever: str | Retriever | None = None,
    tasks: Sequence[str] | None = None,
    **_: Any,
) -> Suite:
    tasks_ = _flashrag_tasks(data_dir, RESEARCH_PAPER_TASKS, only=tasks)
    return Suite(
        name="research-paper",
        description="ReSearch's evaluation: E5 top-5 over wiki-18, ReSearch template and reward",
        tasks=tuple(tasks_),
        env=EnvSettings(
            retriever=retriever or DEFAULT_PAPER_RETRIEVER,
            top_k=5,
            # ReSearch's evaluation has no turn limit, only the token budget; 64 is a cap.
            max_turns=64,
            reward="research",
            template="research_instruct",
            last_turn="normal",
            protocol="research",
        ),
        generation=TurnSettings(
            max_new_tokens=1024,
            max_response_tokens=8192,
            temperature=0.0,
            response_prefix="",
            final_prefix="",
        ),
    )


def _searchr1_paper(
    data_dir: str | Path | None = None,
    retriever: str | Retriever | None = None,
    tasks: Sequence[str] | None = None,
    **_: Any,
) -> Suite:
    tasks_ = _flashrag_tasks(data_dir, SEARCHR1_PAPER_TASKS, only=tasks)
    return Suite(
        name="searchr1-paper",
        description="Search-R1's evaluation: E5 top-3 over wiki-18, Search-R1 template, EM",
        tasks=tuple(tasks_),
        env=EnvSettings(
            retriever=retriever or DEFAULT_PAPER_RETRIEVER,
            top_k=3,
            # max_turns search turns plus Search-R1's final turn without search.
            max_turns=5,
            reward="em",
            template="searchr1",
            last_turn="no_search",
            invalid_action="correct",
            protocol="searchr1",
        ),
        generation=TurnSettings(
            max_new_tokens=500,
            max_response_tokens=4096,
            temperature=0.0,
            response_prefix="",
            final_prefix="",
        ),
    )


SUITES: dict[str, Callable[..., Suite]] = {
    "factbook": _factbook,
    "factbook-dev": lambda **kw: _factbook(split="dev", size=0, **kw),
    "factbook-multihop": _factbook_multihop,
    "factbook-multihop-dev": lambda **kw: _factbook_multihop(split="dev", size=0, **kw),
    "factbook-multihop-boxed": _factbook_multihop_boxed,
    "factbook-multihop-boxed-dev": lambda **kw: _factbook_multihop_boxed(split="dev", size=0, **kw),
    "research-paper": _research_paper,
    "searchr1-paper": _searchr1_paper,
}
"""Suite name -> builder (keyword arguments: ``data_dir``, ``retriever``, ``tasks``)."""

SUITE_TASKS: dict[str, tuple[str, ...]] = {
    **{name: ("factbook",) for name in SUITES if name.startswith("factbook")},
    "research-paper": tuple(name for name, _ in RESEARCH_PAPER_TASKS),
    "searchr1-paper": tuple(name for name, _ in SEARCHR1_PAPER_TASKS),
}
"""Suite name -> its task names (known before any file is read)."""


def check_tasks(name: str, tasks: Sequence[str]) -> None:
    """Check that the suite ``name`` (a key of :data:`SUITE_TASKS`) has every task in ``tasks``.

    Raises:
        ValueError: Naming the first unknown task, the suite's tasks and the closest one.
    """
    from research_env.commands import choices_hint

    known = SUITE_TASKS.get(name, ())
    for t in tasks:
        if t not in known:
            raise ValueError(
                f"suite {name!r} has no task {t!r}; expected one of: "
                f"{', '.join(known)}{choices_hint(t, known)}"
            )


def get_suite(
    name: str,
    *,
    data_dir: str | Path | None = None,
    retriever: str | Retriever | None = None,
    size: int | None = None,
    tasks: Sequence[str] | None = None,
) -> Suite:
    """Build the suite ``name``.

    Args:
        name: A key of :data:`SUITES`.
        data_dir: The FlashRAG-layout folder of the paper suites.
        retriever: Retriever spec or object of the paper suites (default: a server on
            ``127.0.0.1:8000``).
        size: At most this many questions per task (a smoke run; changes the protocol).
        tasks: Only these tasks (``None``: all). A paper suite then needs only their files.

    Raises:
        ValueError: On an unknown name or task, or a paper suite without ``data_dir``.
        FileNotFoundError: If a dataset file of a paper suite is missing.
    """
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; expected one of: {', '.join(SUITES)}")
    check_tasks(name, tasks or ())
    suite = SUITES[name](data_dir=data_dir, retriever=retriever, tasks=tasks)
    if tasks:
        suite = dataclasses.replace(suite, tasks=tuple(t for t in suite.tasks if t.name in tasks))
    return suite.with_size(size) if size else suite
