"""Closed-corpus retrieval: each question searches only the passages it carries.

HotpotQA's distractor setting, 2WikiMultihopQA and MuSiQue give every question its own small
set of paragraphs (the gold ones and distractors) instead of a shared corpus. With
``retriever="closed"`` (or a :class:`ClosedCorpusRetriever`), SearchQA-v0 builds, when an
episode starts, a tiny exact BM25 index over that question's paragraphs alone, so an episode
can only ever see its own question's passages.

The mechanism is a small protocol, :class:`PerExampleRetriever`: a retriever that offers
``for_example(example) -> Retriever``. The env calls it on ``reset`` and searches the returned
retriever for the rest of the episode; the vector env groups the queries of one step by that
retriever (one ``search_batch`` per distinct question).

The passages are read from ``example.metadata["context"]`` (the field is configurable), in any
of these layouts:

* HotpotQA / 2Wiki JSON: ``[[title, [sentence, ...]], ...]``;
* the Hugging Face ``hotpot_qa`` layout (FlashRAG keeps it in ``metadata``):
  ``{"title": [title, ...], "sentences": [[sentence, ...], ...]}``;
* a list of objects: ``[{"title": ..., "text": ...}, ...]`` (``"paragraph_text"``, MuSiQue's
  name, or a ``"sentences"`` list are accepted for ``"text"``).

A paragraph's sentences are joined with single spaces into one passage with id
``"<question id>/<paragraph number>"``.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from research_env.cache import fingerprint
from research_env.data.types import Passage, QAExample
from research_env.retrieval.base import Retriever, check_bm25_params, check_k
from research_env.retrieval.tokenize import tokenize


@runtime_checkable
class PerExampleRetriever(Protocol):
    """A retriever specialised per question: the env searches ``for_example(example)``."""

    def for_example(self, example: QAExample) -> Retriever:
        """Return the retriever for the episodes of ``example``."""
        ...


@dataclass(frozen=True)
class ClosedCorpusConfig:
    """Settings of closed-corpus retrieval."""

    field: str = "context"
    """The ``QAExample.metadata`` key holding the question's paragraphs."""

    k1: float = 1.2
    """BM25 term-frequency saturation (the same Lucene BM25 as the ``bm25s`` backend)."""

    b: float = 0.75
    """BM25 length normalisation strength in [0, 1]."""

    title_weight: int = 1
    """How many times a paragraph's title is indexed (titles name the entity in HotpotQA)."""

    cache_size: int = 4096
    """Per-question indexes kept built (least recently used dropped): the G rollouts of a
    question and later epochs reuse them."""

    def __post_init__(self) -> None:
        if not self.field:
            raise ValueError("expected a non-empty metadata field name")
        check_bm25_params(self.k1, self.b, self.title_weight)
        if isinstance(self.cache_size, bool) or not (
            isinstance(self.cache_size, int) and self.cache_size >= 1
        ):
            raise ValueError(f"expected cache_size >= 1 (int), got {self.cache_size!r}")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(s, str) for s in value)


def _join(sentences: Sequence[str]) -> str:
    return " ".join(s.strip() for s in sentences if s.strip())


def context_passages(example: QAExample, field: str = "context") -> list[Passage]:
    """The passages ``example`` carries in ``example.metadata[field]`` (layouts: module doc).

    Raises:
        ValueError: If the field is missing, empty or in no known layout; the message names
            the question id, the field and the offending entry.

    >>> ex = QAExample("q1", "Who?", ["Ann"], {"context": [["Ann", ["Ann won.", " She ran."]]]})
    >>> context_passages(ex)
    [Passage(id='q1/0', title='Ann', text='Ann won. She ran.', score=None)]
    """
    where = f"question {example.id!r}: metadata[{field!r}]"
    if field not in example.metadata:
        raise ValueError(
            f"question {example.id!r}: no metadata[{field!r}] (closed-corpus retrieval needs "
            f"each question's own paragraphs; metadata has {sorted(example.metadata)})"
        )
    context = example.metadata[field]
    pairs: list[tuple[str, str]] = []
    if isinstance(context, dict):  # {"title": [...], "sentences": [[...], ...]}
        titles, sentences = context.get("title"), context.get("sentences")
        if not (
            _is_str_list(titles)
            and isinstance(sentences, list | tuple)
            and len(sentences) == len(titles)  # type: ignore[arg-type]
            and all(_is_str_list(s) for s in sentences)
        ):
            raise ValueError(
                f"{where}: expected {{'title': [str, ...], 'sentences': [[str, ...], ...]}} "
                f"with one sentence list per title, got keys {sorted(context)}"
            )
        pairs = [(t, _join(s)) for t, s in zip(titles, sentences)]  # type: ignore[arg-type]
    elif isinstance(context, list | tuple):
        for i, entry in enumerate(context):
            if (
                isinstance(entry, list | tuple)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and _is_str_list(entry[1])
            ):
                pairs.append((entry[0], _join(entry[1])))
            elif isinstance(entry, dict) and isinstance(entry.get("title"), str):
                text: Any = entry.get("text", entry.get("paragraph_text", entry.get("sentences")))
                if _is_str_list(text):
                    text = _join(text)
                if not isinstance(text, str):
                    raise ValueError(
                        f"{where}[{i}]: expected a 'text' string (or 'paragraph_text', or a "
                        f"'sentences' list) next to 'title', got keys {sorted(entry)}"
                    )
                pairs.append((entry["title"], text))
            else:
                raise ValueError(
                    f"{where}[{i}]: expected [title, [sentence, ...]] or "
                    f"{{'title': ..., 'text': ...}}, got {_short(entry)}"
                )
    else:
        raise ValueError(
            f"{where}: expected a list of paragraphs or {{'title', 'sentences'}}, "
            f"got {type(context).__name__}"
        )
    if not pairs:
        raise ValueError(f"{where}: no paragraphs (empty context)")
    return [Passage(f"{example.id}/{i}", title, text) for i, (title, text) in enumerate(pairs)]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TinyBM25:
    """Exact BM25 (Lucene's variant, as the ``bm25s`` backend) over a handful of passages.

    Ranking: score descending, then passage order; only passages with a positive score.

    Args:
        passages: The passages to index.
        config: ``k1``, ``b`` and ``title_weight`` are used.
    """

    def __init__(self, passages: Sequence[Passage], config: ClosedCorpusConfig) -> None:
        if not passages:
            raise ValueError("expected at least one passage")
        self.passages = list(passages)
        self.fingerprint = fingerprint(
            [str(config.k1), str(config.b), str(config.title_weight)]
            + [part for p in self.passages for part in (p.id, p.title, p.text)]
        )
        """Identifies the index (passages, settings) for :mod:`.result_cache`."""
        docs = [
            tokenize(" ".join([p.title] * config.title_weight + [p.text])) for p in self.passages
        ]
        n = len(docs)
        avgdl = max(sum(len(d) for d in docs) / n, 1e-9)
        df: dict[str, int] = defaultdict(int)
        tfs: list[dict[str, int]] = []
        for doc in docs:
            tf: dict[str, int] = defaultdict(int)
            for term in doc:
                tf[term] += 1
            tfs.append(tf)
            for term in tf:
                df[term] += 1
        # postings[term] = [(passage number, contribution), ...]
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, (doc, tf) in enumerate(zip(docs, tfs)):
            norm = config.k1 * (1 - config.b + config.b * len(doc) / avgdl)
            for term, count in tf.items():
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                self._postings[term].append((i, idf * count / (count + norm)))

    def search(self, query: str, k: int) -> list[Passage]:
        """Return up to ``k`` passages for ``query``, best first."""
        check_k(k)
        scores: dict[int, float] = defaultdict(float)
        for term in tokenize(query):
            for i, contribution in self._postings.get(term, ()):
                scores[i] += contribution
        ranked = sorted((i for i, s in scores.items() if s > 0), key=lambda i: (-scores[i], i))
        out = []
        for i in ranked[:k]:
            p = self.passages[i]
            out.append(Passage(p.id, p.title, p.text, scores[i]))
        return out

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Return ``[search(q, k) for q in queries]``."""
        check_k(k)
        return [self.search(q, k) for q in queries]


class ClosedCorpusRetriever:
    """Per-question BM25 over the passages each question carries (HotpotQA distractor style).

    The env calls :meth:`for_example` when an episode starts and searches only that question's
    passages. Calling :meth:`search` directly is an error: there is no shared corpus.

    Args:
        config: Where the passages are and the BM25 settings.

    Example:
        >>> ex = QAExample("q1", "Where was Ann born?", ["Lyon"], {"context": [
        ...     ["Ann Smith", ["Ann Smith was born in Lyon."]],
        ...     ["Bob Jones", ["Bob Jones was born in Oslo."]]]})
        >>> r = ClosedCorpusRetriever().for_example(ex)
        >>> [p.title for p in r.search("where was Ann born", 5)]
        ['Ann Smith', 'Bob Jones']
    """

    def __init__(self, config: ClosedCorpusConfig | None = None) -> None:
        self.config = config or ClosedCorpusConfig()
        self._built: OrderedDict[str, TinyBM25] = OrderedDict()  # by question id + passages
        self._lock = threading.Lock()

    def for_example(self, example: QAExample) -> TinyBM25:
        """The index over ``example``'s own passages (built once, then reused).

        Raises:
            ValueError: If the example carries no usable passages (the message names the
                question id and the field).
        """
        context = example.metadata.get(self.config.field)
        key = fingerprint([example.id, json.dumps(context, sort_keys=True, default=str)])
        with self._lock:
            built = self._built.get(key)
            if built is not None:
                self._built.move_to_end(key)
                return built
        built = TinyBM25(context_passages(example, self.config.field), self.config)
        with self._lock:
            self._built[key] = built
            if len(self._built) > self.config.cache_size:
                self._built.popitem(last=False)
        return built

    def search(self, query: str, k: int) -> list[Passage]:
        """Not available: closed-corpus retrieval searches one question's passages.

        Raises:
            TypeError: Always; use ``for_example(example).search(query, k)``.
        """
        raise TypeError(
            "ClosedCorpusRetriever has no shared corpus: search for_example(example) instead "
            "(SearchQAEnv does this itself)"
        )

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[Passage]]:
        """Not available; see :meth:`search`."""
        return [self.search(q, k) for q in queries]
