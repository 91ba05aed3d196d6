"""What the engine adapters share: checked env arguments and one row per question.

An engine's config system (Hydra/OmegaConf for SkyRL and verl, TOML for verifiers) hands us a
mapping of SearchQA-v0 arguments; :func:`env_kwargs` checks it against the env's signature so a
typo fails with one line naming the key, instead of a ``TypeError`` deep inside a worker.
:func:`question_rows` lists the questions of a split with the chat prompt the env would show,
for the engines that read their training data from a file, and :func:`write_parquet` /
:func:`write_dataset_cli` write those rows as the parquet file such an engine trains from.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research_env.env import SearchQAEnv
from research_env.records import episode_record

ENV_ARGUMENTS: tuple[str, ...] = tuple(
    name for name in inspect.signature(SearchQAEnv.__init__).parameters if name != "self"
)
"""The keyword arguments of ``gym.make("SearchQA-v0", ...)``."""


def env_kwargs(config: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Return ``config`` as SearchQA-v0 keyword arguments, checked.

    Args:
        config: A mapping (a dict, an OmegaConf ``DictConfig``...) of env arguments, or ``None``.
        where: Where the mapping came from, for the error message (a config path).

    Returns:
        A plain dict (OmegaConf containers converted to Python lists and dicts).

    Raises:
        ValueError: On a key that is not an argument of the env, naming it and ``where``.
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a mapping of SearchQA-v0 arguments, got {config!r}")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in ENV_ARGUMENTS:
            raise ValueError(
                f"{where}.{key}: not an argument of SearchQA-v0 "
                f"(expected one of {', '.join(ENV_ARGUMENTS)})"
            )
        out[str(key)] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """OmegaConf ``ListConfig`` / ``DictConfig`` values as plain lists and dicts."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class QuestionRow:
    """One question of a split, as an engine's dataset row holds it."""

    question_id: str
    """The question's id in the env's dataset (``reset(options={"question_id": ...})``)."""

    index: int
    """Its index in the split."""

    question: str
    """The bare question."""

    messages: list[dict[str, str]]
    """The chat prompt the env's template builds: system message (if any), then the user's."""

    golden_answers: list[str]
    """The accepted answers (for the engine's logs; the env scores with its own copy)."""


def question_rows(env: SearchQAEnv) -> list[QuestionRow]:
    """Every question of ``env``'s split, in order, with the prompt its template builds."""
    return [
        QuestionRow(
            question_id=e.id,
            index=i,
            question=e.question,
            messages=env.template.messages(e.question),
            golden_answers=list(e.golden_answers),
        )
        for i, e in enumerate(env.examples)
    ]


def pick_question(extras: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``reset`` options naming the question of a dataset row.

    The row carries ``question_id`` (or ``index``) at its top level or under ``extra_info``
    (the layout SkyRL and verl datasets use).

    Raises:
        ValueError: If the row names no question.
    """
    places: list[Mapping[str, Any]] = [extras]
    info = extras.get("extra_info")
    if isinstance(info, Mapping):
        places.append(info)
    for place in places:
        if place.get("question_id") is not None:
            return {"question_id": str(place["question_id"])}
        if place.get("index") is not None:
            return {"index": int(place["index"])}
    raise ValueError(
        f"{where}: the row names no question; expected 'question_id' or 'index' at its top "
        f"level or under 'extra_info' (keys present: {sorted(extras)})"
    )


def engine_metrics(info: Mapping[str, Any], turns: int) -> dict[str, float]:
    """What an engine logs about an ended episode, read from its last ``step`` info.

    The values come from :func:`research_env.records.episode_record`, as every other route's.

    >>> info = {"num_searches": 2, "prediction": "Lima", "end_reason": "answer",
    ...         "reward_components": {"em": 1.0, "f1": 1.0, "format_ok": True}}
    >>> engine_metrics(info, turns=3)["searches"], engine_metrics(info, turns=3)["answered"]
    (2.0, 1.0)
    """
    record = episode_record(None, info, question="", reward=0.0)
    return {
        "em": record.em,
        "f1": record.f1,
        "format_ok": float(record.format_ok),
        "answer_in_retrieval": float(record.answer_in_retrieval),
        "answered": float(record.prediction is not None),
        "searches": float(record.searches),
        "turns": float(turns),
    }


def write_parquet(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> int:
    """Write ``rows`` to the parquet file ``path`` atomically (a temporary file, then a rename).

    Returns:
        The number of rows written.
    """
    import pandas as pd

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(list(rows)).to_parquet(tmp, index=False)
    tmp.replace(path)
    return len(rows)


def write_dataset_cli(parser: argparse.ArgumentParser, out: str, write: Callable[[], int]) -> int:
    """Run an engine's dataset writer for its ``python -m`` entry point; returns the exit code.

    A bad dataset or an unwritable ``out`` exits 2 with one ``error:`` line; success prints
    how many rows went to ``out``.
    """
    try:
        n = write()
    except (ValueError, OSError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"wrote {n} rows to {out}")
    return 0
