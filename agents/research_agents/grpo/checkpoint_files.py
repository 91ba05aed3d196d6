"""A GRPO checkpoint's files, read without a trainer: names, format, finding, reading.

What a checkpoint folder holds and how its plain values are stored is :mod:`.checkpoint`'s module
docstring. This module is everything that needs only the folder: :func:`find_checkpoint` (with the
recovery of an interrupted save's ``checkpoint.old`` and of orphaned ``checkpoint.tmp<pid>/``
folders), :func:`read_step`, :func:`read_trainer_state`, :func:`saved_config` (the run's
GRPOConfig, which ``searchqa eval --checkpoint`` and the leaderboard read) and
:func:`resume_config`. Writing a checkpoint and loading one into a trainer stay in
:mod:`.checkpoint`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from research_env.commands import UsageError

if TYPE_CHECKING:
    from research_agents.grpo.config import GRPOConfig

CHECKPOINT = "checkpoint"
"""The checkpoint folder's name inside a run's ``output_dir``."""

STATE = "trainer_state.json"
"""Step, elapsed time and the plain values of the optimiser and RNG states."""

TENSORS = "trainer_state.safetensors"
"""The optimiser's and RNGs' tensors, referred to by name from :data:`STATE`."""

LEGACY_STATE = "trainer_state.pt"
"""The single ``torch.save`` file of earlier versions (read with ``weights_only=True``)."""

SHAPE_FIELDS = ("model", "dtype", "lora_rank", "lora_alpha", "trainable_layers")
"""GRPOConfig fields that decide which weights exist, their shapes and the optimiser's parameters:
a resume must keep the checkpoint's values."""

_FORMAT = 2
_OWNER = ".owner.json"


class CheckpointError(UsageError, ValueError):
    """A checkpoint or a run file a resume reads is missing, unreadable or does not fit.

    The message is one line naming the path (``metrics.jsonl`` lines: ``file:line``); being a
    :class:`~research_env.commands.UsageError`, any ``searchqa`` command prints it as that one
    line and exits 2.
    """


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------- plain values <-> JSON
def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """``value`` as JSON: tensors go to ``tensors`` (referred to by name), tuples are tagged."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors, f"{key}.{k}") for k, v in value.items()}
        return {
            "__items__": [
                [_encode(k, tensors, f"{key}.k{i}"), _encode(v, tensors, f"{key}.{i}")]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    raise TypeError(f"checkpoint state: cannot store {type(value).__name__} at {key}")


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Invert :func:`_encode`; anything it never writes is an error naming ``where``."""
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        name = value["__tensor__"]
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor {name!r} is missing from {TENSORS}")
        return tensors[name]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=np.dtype(str(value["dtype"])))
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__items__" in value:
        return {
            _decode(k, tensors, where): _decode(v, tensors, where) for k, v in value["__items__"]
        }
    return {k: _decode(v, tensors, where) for k, v in value.items()}


# ---------------------------------------------------------------- orphaned temporary folders
def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start`` (when known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    now = _start_time(pid)
    return start is None or now is None or now == start


def remove_orphans(final: Path) -> list[Path]:
    """Delete the ``<final>.tmp<pid>/`` folders whose writer is gone (or is this process).

    A folder stays while the process that writes it is alive (its start time, recorded in the
    folder, tells a reused pid apart). Returns the folders deleted.
    """
    removed: list[Path] = []
    pattern = re.compile(re.escape(final.name) + r"\.tmp(\d+)$")
    if not final.parent.is_dir():
        return removed
    for entry in final.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        pid = int(match.group(1))
        start: str | None = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            start = str(json.loads((entry / _OWNER).read_text())["start"])
        if pid == os.getpid() or not _alive(pid, start):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# ---------------------------------------------------------------- find and read
def _complete(path: Path) -> bool:
    return (path / STATE).is_file() or (path / LEGACY_STATE).is_file()


def find_checkpoint(path: Path, *, repair: bool = True) -> Path:
    """The checkpoint to resume from at ``path``, recovering an interrupted save's ``.old``.

    Args:
        path: The checkpoint folder (``<output_dir>/checkpoint``).
        repair: Move a surviving ``<path>.old`` back to ``path`` and delete orphaned temporary
            folders (``False``: only report what would be used).

    Raises:
        CheckpointError: If there is nothing to resume from.
    """
    old = path.with_name(path.name + ".old")
    if _complete(path):
        if repair and old.exists():  # the kill came after the second rename: old is stale
            shutil.rmtree(old, ignore_errors=True)
    elif _complete(old) and not path.exists():
        if not repair:
            return old
        old.rename(path)
        print(
            f"checkpoint: recovered {path} from {old} (a save was interrupted between its "
            "two renames)",
            file=sys.stderr,
        )
    elif path.exists():
        raise CheckpointError(
            f"{path}: not a complete checkpoint (no {STATE}); nothing to resume from"
        )
    else:
        raise CheckpointError(
            f"no checkpoint at {path} (expected {path / STATE}); nothing to resume from: "
            "run without --resume to start a new run"
        )
    if repair:
        for orphan in remove_orphans(path):
            print(f"checkpoint: removed {orphan} (left by an interrupted save)", file=sys.stderr)
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: unreadable ({_one_line(e)})") from None


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: unreadable safetensors ({_one_line(e)})") from None


def _legacy_state(path: Path) -> dict[str, Any]:
    """A ``trainer_state.pt`` of earlier versions, unpickled with only plain types allowed."""
    import pickle

    allowed: list[Any] = [np.ndarray, np.dtype, np.dtypes.UInt32DType]
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    reconstruct = getattr(core.multiarray, "_reconstruct", None)
    if reconstruct is not None:
        allowed.append(reconstruct)
    try:
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on the pickle protocol
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n|$)", str(e))
        detail = f": {found.group(1).strip()[:120]}" if found else ""
        raise CheckpointError(
            f"{path}: refused to load: it holds more than tensors and plain values (unpickling "
            f"it could run code{detail}); use a checkpoint you trust"
        ) from None
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({_one_line(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(state).__name__}")
    return state


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    """The trainer state of checkpoint ``path``: ``step``, ``elapsed_s``, ``optimizer``, ``rng``.

    Raises:
        CheckpointError: If the state is missing or unreadable (naming the file).
    """
    path = Path(path)
    if not (path / STATE).is_file() and (path / LEGACY_STATE).is_file():
        return _legacy_state(path / LEGACY_STATE)
    raw = _read_json(path / STATE)
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{path / STATE}: expected format {_FORMAT}, got {found!r}")
    tensors = _load_tensors(path / TENSORS)
    return dict(_decode(raw, tensors, str(path / STATE)))


def read_step(path: str | Path) -> int | None:
    """The step checkpoint ``path`` was saved at (its JSON alone), or ``None`` without a state.

    Raises:
        CheckpointError: If the state file is unreadable, or a legacy ``trainer_state.pt`` holds
            anything but tensors and plain values (it is never unpickled freely).
    """
    path = Path(path)
    try:
        raw = json.loads((path / STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:  # none, or renamed away by a save this very moment
        raw = None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path / STATE}: unreadable ({_one_line(e)})") from None
    if raw is not None:
        step = raw.get("step") if isinstance(raw, dict) else None
        if isinstance(step, bool) or not isinstance(step, int):
            raise CheckpointError(f"{path / STATE}: field 'step' must be an integer, got {step!r}")
        return step
    if (path / LEGACY_STATE).is_file():
        return int(_legacy_state(path / LEGACY_STATE).get("step", 0))
    return None


def saved_config(path: str | Path) -> GRPOConfig:
    """The GRPOConfig checkpoint ``path`` was trained with (its ``config.json``).

    Raises:
        CheckpointError: If ``config.json`` is missing, unreadable or not a valid config.
    """
    from research_agents.grpo.config import GRPOConfig

    file = Path(path) / "config.json"
    data = _read_json(file)
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(GRPOConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        print(
            f"checkpoint: {file}: ignoring unknown field(s) {', '.join(unknown)}", file=sys.stderr
        )
    try:
        return GRPOConfig(**{k: v for k, v in data.items() if k in names})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: not a valid run config ({_one_line(e)})") from None


def _conflicts(requested: GRPOConfig, saved: GRPOConfig, names: Iterable[str]) -> list[str]:
    return [
        f"{name}={getattr(requested, name)!r} (checkpoint: {getattr(saved, name)!r})"
        for name in SHAPE_FIELDS
        if name in names and getattr(requested, name) != getattr(saved, name)
    ]


def resume_config(requested: GRPOConfig, explicit: Iterable[str]) -> GRPOConfig:
    """The config a ``--resume`` of ``requested.output_dir`` runs with.

    That is the checkpoint's saved config, with the ``explicit`` fields (those the user set)
    taken from ``requested``; ``output_dir`` is always ``requested``'s (the run may have moved).

    Raises:
        CheckpointError: If there is no checkpoint, its state or config is unreadable, or an
            explicit field that decides the weights' shapes (:data:`SHAPE_FIELDS`) differs from
            the checkpoint's.
    """
    path = find_checkpoint(Path(requested.output_dir) / CHECKPOINT, repair=False)
    read_step(path)  # a hostile or unreadable state fails here, before any model loads
    saved = saved_config(path)
    names = set(explicit) | {"output_dir"}
    conflicts = _conflicts(requested, saved, names)
    if conflicts:
        raise CheckpointError(
            f"{path}: cannot resume with {'; '.join(conflicts)}: these fields decide the "
            "weights' shapes; leave them out to resume, or start a new run in another output_dir"
        )
    return saved.replace(**{name: getattr(requested, name) for name in names})
