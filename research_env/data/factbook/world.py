"""The Factbook world: corpus + QA set, built once and cached on disk.

The cache lives in ``cache_dir()/factbook/<fingerprint>/`` where the fingerprint covers the
installed Factbook files and :data:`BUILDER_VERSION`; a new package version or a new builder
therefore gets a fresh directory. Files are gzipped JSON lines written atomically; the
``manifest.json`` is written last and marks a complete build.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research_env.cache import atomic_write_bytes, cache_dir, fingerprint
from research_env.data.factbook.corpus import build_corpus
from research_env.data.factbook.qa import SPLITS, build_qa
from research_env.data.factbook.source import iter_entries, source_fingerprint
from research_env.data.types import Passage, QAExample

BUILDER_VERSION = "1"
"""Bump whenever the corpus or QA output changes; it is part of the cache fingerprint."""

CORPUS_FILE = "corpus.jsonl.gz"
QA_FILE = "qa.jsonl.gz"
MANIFEST_FILE = "manifest.json"

_MEMO: dict[Path, FactbookWorld] = {}


@dataclass
class FactbookWorld:
    """The embedded offline world: passages, questions and their fingerprint.

    Attributes:
        corpus: Every passage (see :mod:`research_env.data.factbook.corpus`).
        examples: Every question, all splits (see :mod:`research_env.data.factbook.qa`).
        fingerprint: Hash of the source data and builder version.
    """

    corpus: list[Passage]
    examples: list[QAExample]
    fingerprint: str

    def split(self, name: str) -> list[QAExample]:
        """Return the questions of one split.

        Args:
            name: ``"train"``, ``"dev"`` or ``"test"``.

        Raises:
            ValueError: If ``name`` is not a split name.
        """
        if name not in SPLITS:
            raise ValueError(f"unknown Factbook split {name!r}; expected one of {list(SPLITS)}")
        return [e for e in self.examples if e.metadata.get("split") == name]


def world_fingerprint() -> str:
    """Return the cache fingerprint: source files + :data:`BUILDER_VERSION`."""
    return fingerprint(["factbook", source_fingerprint(), BUILDER_VERSION])


def world_dir() -> Path:
    """Return the cache directory of the current world (may not exist yet)."""
    return cache_dir() / "factbook" / world_fingerprint()


def build_world() -> FactbookWorld:
    """Build the world from the installed Factbook data, without touching the cache."""
    entries = list(iter_entries())
    corpus = build_corpus(entries)
    return FactbookWorld(corpus, build_qa(corpus, entries), world_fingerprint())


def _dump_jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    """Serialise rows as gzipped JSON lines (fixed mtime, so the bytes are reproducible)."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)


def _load_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the rows of a gzipped JSON-lines file."""
    for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines():
        if line:
            yield json.loads(line)


def save_world(world: FactbookWorld, directory: Path) -> None:
    """Write ``world`` into ``directory`` atomically (manifest last).

    Args:
        world: The world to save.
        directory: Target directory, created if needed.
    """
    passages = ({"id": p.id, "title": p.title, "text": p.text} for p in world.corpus)
    examples = (
        {
            "id": e.id,
            "question": e.question,
            "golden_answers": e.golden_answers,
            "metadata": e.metadata,
        }
        for e in world.examples
    )
    atomic_write_bytes(directory / CORPUS_FILE, _dump_jsonl(passages))
    atomic_write_bytes(directory / QA_FILE, _dump_jsonl(examples))
    manifest = {
        "fingerprint": world.fingerprint,
        "builder_version": BUILDER_VERSION,
        "source_fingerprint": source_fingerprint(),
        "passages": len(world.corpus),
        "examples": len(world.examples),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    atomic_write_bytes(directory / MANIFEST_FILE, data)


def load_saved_world(directory: Path) -> FactbookWorld | None:
    """Load a world saved by :func:`save_world`; ``None`` if missing, partial or corrupt.

    Args:
        directory: A world cache directory.
    """
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        corpus = [
            Passage(r["id"], r["title"], r["text"]) for r in _load_jsonl(directory / CORPUS_FILE)
        ]
        examples = [
            QAExample(r["id"], r["question"], r["golden_answers"], r["metadata"])
            for r in _load_jsonl(directory / QA_FILE)
        ]
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    if len(corpus) != manifest.get("passages") or len(examples) != manifest.get("examples"):
        return None
    return FactbookWorld(corpus, examples, str(manifest["fingerprint"]))


def load_factbook_world(*, rebuild: bool = False) -> FactbookWorld:
    """Return the Factbook world, building and caching it on first use.

    The result is memoised per process (per cache directory); later processes load the cached
    files, which takes a fraction of a second.

    Args:
        rebuild: Ignore the memo and any cached files; build afresh and overwrite the cache.

    Returns:
        The world (shared between callers: treat it as read-only).
    """
    directory = world_dir()
    if not rebuild:
        world = _MEMO.get(directory) or load_saved_world(directory)
        if world is not None:
            _MEMO[directory] = world
            return world
    world = build_world()
    save_world(world, directory)
    _MEMO[directory] = world
    return world


def clear_memo() -> None:
    """Forget the worlds memoised in this process (the on-disk cache is kept)."""
    _MEMO.clear()
