"""Protocol fingerprints: what must match for two results to be ranked on one table.

A result carries two descriptions of how it was made:

* the **protocol** — everything that changes the numbers for a given agent: the questions
  (dataset, split, a hash of their content and of how they were picked), the retrieval index
  (its identity and the retriever's kind and settings), ``top_k``, the turn budget, the prompt
  template, the answer parser, normaliser and reward, the generation settings, the seed, the
  metric definitions and the judge. Two results with the same protocol hash were measured the
  same way and can be ranked together;
* the **provenance** — what was measured: agent kind and name, model name and a hash of its
  weights, package versions and the git commit. It identifies a row, never splits a table.

Code-defined parts (answer parser, normaliser, reward, format check) are fingerprinted by their
*behaviour*: each is run on a fixed set of probe inputs and the outputs are hashed, so a
refactor that changes nothing keeps the hash, and any change in what they compute changes it.
A retriever is identified by its own ``fingerprint`` attribute when it has one (the BM25 and
dense indexes hash their corpus and settings), else by the passages it returns for probe
queries (a remote server, user code).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from research_env.actions import parse_action
from research_env.data.types import QAExample
from research_env.retrieval.base import RetrievalError, Retriever
from research_env.rewards import (
    RewardFn,
    exact_match,
    f1_score,
    normalize_answer,
    score_answer,
    sub_em,
)
from research_env.settings import TurnSettings
from research_env.templates import PromptTemplate

__all__ = [
    "PROTOCOL_VERSION",
    "dataset_fingerprint",
    "generation_fingerprint",
    "git_commit",
    "parser_fingerprint",
    "protocol_hash",
    "retriever_identity",
    "scoring_fingerprint",
    "stable_hash",
    "template_fingerprint",
    "weights_hash",
]

PROTOCOL_VERSION = 1
"""Bump when the layout of a protocol description changes."""


def _canonical(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _canonical(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float):
        return float(repr(obj)) if obj == obj else "nan"
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    return repr(obj)


def stable_hash(obj: Any, length: int = 16) -> str:
    """A hex digest of ``obj`` as canonical JSON (key order does not matter; dataclasses ok).

    Examples:
        >>> stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": (1, 2), "a": 1})
        True
        >>> stable_hash({"a": 1}) == stable_hash({"a": 2})
        False
    """
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def protocol_hash(protocol: Mapping[str, Any]) -> str:
    """The hash that groups results on a leaderboard: equal hashes, comparable results."""
    return stable_hash(protocol)


# ------------------------------------------------------------------------------ questions
def dataset_fingerprint(examples: Sequence[QAExample]) -> str:
    """Hash of the questions as asked: ids, questions, golden answers and types, in order."""
    return stable_hash(
        [[e.id, e.question, list(e.golden_answers), e.metadata.get("type")] for e in examples]
    )


# ------------------------------------------------------------------------------ code probes
_ANSWER_PROBES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Lima", ("lima",)),
    ("The  Lima!", ("Lima",)),
    ("Lima, Peru", ("Lima",)),
    ("Ｌｉｍａ", ("Lima",)),
    ("Bogota", ("Bogotá", "Bogota D.C.")),
    ("the capital is Paris", ("Paris",)),
    ("U.S. dollar", ("US dollar", "dollar")),
    ("yes", ("no",)),
    ("no", ("no",)),
    ("", ("",)),
    ("a an the", ("the",)),
    ("¿Qué? «Sí»", ("qué sí",)),
    ("New York City", ("New York",)),
    ("8,848 m", ("8848 m",)),
)

_ACTION_PROBES: tuple[str, ...] = (
    "<think>x</think><search>capital of Peru</search>",
    "<search>a <search>b</search>",
    "<answer>The answer is \\boxed{Lima}</answer>",
    "<answer> Lima </answer>",
    "<answer>\\boxed{\\text{Lima}}</answer>",
    "<search><answer>x</answer></search>",
    "<search>unclosed",
    "no tags at all",
    "</answer>",
    "<THINK>t</THINK><Search >q</Search >",
)

_RESPONSE_PROBES: tuple[str, ...] = (
    "<think>a</think><search>q</search> <result>\nDoc 1\n</result><think>b</think>"
    "<answer>\\boxed{x}</answer>",
    "<search>q</search> <result>\nDoc 1\n</result><answer>\\boxed{x}</answer>",
    "<think>a</think><answer> x </answer>",
    "<answer>x</answer> trailing",
    "",
)


def parser_fingerprint() -> str:
    """Behaviour hash of the action parser (which text becomes which query or answer)."""
    return stable_hash([repr(parse_action(a)) for a in _ACTION_PROBES])


def scoring_fingerprint(reward: str | RewardFn) -> dict[str, str]:
    """Behaviour hashes of the answer normaliser and metrics, and of the reward.

    Args:
        reward: The reward preset name (or callable) the env scored answers with.

    Returns:
        ``{"reward": name, "reward_hash": ..., "normaliser_hash": ...}``.
    """
    from research_env.rewards import get_reward_fn

    fn = get_reward_fn(reward)
    normaliser = [
        [normalize_answer(p), exact_match(p, g), f1_score(p, g), sub_em(p, g)]
        for p, g in _ANSWER_PROBES
    ]
    rewards = [
        fn(score_answer(p, g, format_ok)) for p, g in _ANSWER_PROBES for format_ok in (True, False)
    ]
    rewards.append(fn(score_answer(None, ("x",), False)))
    name = reward if isinstance(reward, str) else getattr(reward, "__qualname__", repr(reward))
    return {
        "reward": name,
        "reward_hash": stable_hash(rewards),
        "normaliser_hash": stable_hash(normaliser),
    }


_LATER_FIELDS: dict[str, Any] = {"titles_line": None}
"""Template fields added after protocols were published, with their off values: a field at
its off value is left out of the hash, so the templates that do not use it keep their hashes
(and stored leaderboard results stay comparable)."""


_LATER_TURN_FIELDS: dict[str, Any] = {"answer_continuation": ""}
"""The same for the generation settings (:class:`~research_env.settings.TurnSettings`)."""


def generation_fingerprint(turns: TurnSettings) -> dict[str, Any]:
    """The generation settings of a protocol: every field, less later ones left at their off value.

    >>> "answer_continuation" in generation_fingerprint(TurnSettings())
    False
    >>> generation_fingerprint(TurnSettings(answer_continuation="x"))["answer_continuation"]
    'x'
    """
    return {
        k: v
        for k, v in dataclasses.asdict(turns).items()
        if k not in _LATER_TURN_FIELDS or v != _LATER_TURN_FIELDS[k]
    }


def template_fingerprint(template: PromptTemplate) -> dict[str, str]:
    """Name, content hash and format-check behaviour hash of a prompt template."""
    checks = [list(template.check_format(r)) for r in _RESPONSE_PROBES]
    fields = {
        k: v
        for k, v in dataclasses.asdict(template).items()
        if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]
    }
    return {
        "name": template.name,
        "hash": stable_hash(fields),
        "format_check_hash": stable_hash(checks),
    }


# ------------------------------------------------------------------------------ retrieval
PROBE_QUERIES: tuple[str, ...] = (
    "capital",
    "What is the capital of France?",
    "highest point",
    "currency exchange rates",
    "population of the largest city",
    "who wrote the novel",
    "river",
    "1984",
)
"""Queries a retriever without its own fingerprint is identified by."""


EXECUTION_KEYS: frozenset[str] = frozenset(
    {
        "url",
        "accelerator",
        "n_threads",
        "timeout_s",
        "connect_timeout_s",
        "retries",
        "backoff_s",
        "max_backoff_s",
        "jitter",
        "max_connections",
        "max_batch",
        "cache_size",
        "batch_size",
        "device",
    }
)
"""Retriever settings that change how fast or where it runs, never what it returns; left out
of the protocol (where a server runs is not what it serves)."""


def _strip_execution(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_execution(v) for k, v in value.items() if k not in EXECUTION_KEYS}
    return value


def _config_of(retriever: Any) -> Any:
    config = getattr(retriever, "config", None)
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return _canonical(_strip_execution(dataclasses.asdict(config)))
    return repr(config)


def retriever_identity(
    retriever: Retriever, extra_queries: Sequence[str] = (), k: int = 5
) -> dict[str, Any]:
    """Identify the index behind ``retriever`` and its settings.

    Args:
        retriever: Any retriever.
        extra_queries: Further probe queries (e.g. a few questions of the suite), used only
            when the retriever has no ``fingerprint`` of its own.
        k: Passages per probe query.

    Returns:
        ``{"kind", "config", "fingerprint", "source"}`` where ``source`` is ``"index"`` (the
        retriever's own fingerprint, covering corpus and index settings), ``"composite"``
        (fusion of identified retrievers), ``"per_question"`` (closed corpus: the passages
        come with the questions, which the dataset hash covers) or ``"probe"``.

    Raises:
        RetrievalError: If the probe queries fail (the server is down).
    """
    kind = type(retriever).__name__
    config = _config_of(retriever)
    inner = getattr(retriever, "retrievers", None)
    if isinstance(inner, list) and inner:
        parts = [retriever_identity(r, extra_queries, k) for r in inner]
        settings = {
            "weights": getattr(retriever, "weights", None),
            "k_rrf": getattr(retriever, "k_rrf", None),
            "depth": getattr(retriever, "depth", None),
        }
        return {
            "kind": kind,
            "config": _canonical(settings),
            "fingerprint": stable_hash([p["fingerprint"] for p in parts] + [settings]),
            "source": "composite",
            "parts": parts,
        }
    own = getattr(retriever, "fingerprint", None)
    if isinstance(own, str) and own:
        return {"kind": kind, "config": config, "fingerprint": own, "source": "index"}
    if hasattr(retriever, "for_example"):
        return {
            "kind": kind,
            "config": config,
            "fingerprint": stable_hash([kind, config]),
            "source": "per_question",
        }
    queries = list(PROBE_QUERIES) + list(extra_queries)
    try:
        results = retriever.search_batch(queries, k)
    except RetrievalError as e:
        raise RetrievalError(f"could not identify the {kind} index by probe queries: {e}") from e
    seen = [[[p.id, p.title, p.text] for p in passages] for passages in results]
    return {"kind": kind, "config": config, "fingerprint": stable_hash(seen), "source": "probe"}


# ------------------------------------------------------------------------------ provenance
def weights_hash(model_dir: str | Path) -> str | None:
    """SHA-256 (first 16 hex digits) of a model folder's weight files, or ``None`` if none.

    Covers ``*.safetensors`` and ``*.bin`` files in name order, by content.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        return None
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin")
    )
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def _git_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / ".git"
        if candidate.is_dir():
            return candidate
        if candidate.is_file():  # a worktree: "gitdir: <path>"
            text = candidate.read_text(encoding="utf-8").strip()
            if text.startswith("gitdir:"):
                return (folder / text.split(":", 1)[1].strip()).resolve()
    return None


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit checked out in the repository containing ``start`` (read from ``.git``).

    Reads ``HEAD``, loose refs and ``packed-refs`` directly; ``None`` outside a repository.
    """
    root = Path(start) if start is not None else Path(__file__).resolve().parent
    git_dir = _git_dir(root)
    if git_dir is None or not (git_dir / "HEAD").is_file():
        return None
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        if (base / ref).is_file():
            return (base / ref).read_text(encoding="utf-8").strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def package_versions() -> dict[str, str | None]:
    """Versions of the packages a result depends on (``None``: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("research-env", "torch", "transformers", "numpy", "bm25s", "faiss-cpu"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
