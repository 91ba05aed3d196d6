r"""Proposers: who offers the K candidate actions the SB3 agent chooses between.

A proposer looks at the episode so far (:class:`ProposalState`: the question, the queries
issued, the passages each search showed) and returns candidate actions in priority order:
searches (a query) and answers (a span). It never sees the golden answers.

- :class:`HeuristicProposer` builds queries from the question's entity spans and relation
  phrases, recombined with entities found in retrieved passages (``"Peru currency"`` after a
  search showed ``Peru — Government — Capital``), and answer spans from retrieved passages:
  each passage's title entity and the values of its first ``key: value`` parts, with the
  passages of other searches and ranks as distractors.
- :class:`LLMProposer` samples the next segment from a language model several times through
  the :class:`~research_agents.generation.base.Generator` protocol, keeps the distinct
  searches and answers it parses, and fills the rest from a fallback proposer.

Every candidate carries its provenance (which search, which passage rank, which part of the
passage, whether it came from the question) so the env can turn it into features.

The text heuristics the heuristic proposer uses (entity spans, relation phrases, answer spans of
a passage) are plain string functions in :mod:`research_agents.sb3.spans`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from research_agents.baselines.readers import ShownPassage
from research_agents.sb3.spans import (
    clean_span,
    content_words,
    entity_spans,
    passage_parts,
    relation_phrases,
    title_entity,
)

if TYPE_CHECKING:
    from research_agents.generation.base import Generator, SamplingParams

__all__ = [
    "Candidate",
    "CandidateKind",
    "HeuristicProposer",
    "LLMProposer",
    "ProposalState",
    "Proposer",
    "clean_span",
    "content_words",
    "entity_spans",
    "relation_phrases",
]

CandidateKind = Literal["search", "answer"]
Origin = Literal["question", "retrieval", "model", "fallback"]


@dataclass(frozen=True)
class Candidate:
    """One action the agent may choose.

    Attributes:
        kind: ``"search"`` (``text`` is the query) or ``"answer"`` (``text`` is the answer).
        text: The query or the answer span, one line, no tags.
        origin: Where it came from: the question's own words, a retrieved passage, a language
            model, or the env's fallback.
        source_title: Title of the passage the span (or the query's entity) came from.
        source_rank: That passage's rank in its search results (0 = top), or ``None``.
        source_age: How many searches ago that passage was shown (0 = the latest), or ``None``.
        part_index: For a span, the position of its ``key: value`` part in the passage;
            ``None`` for a title entity or a non-passage candidate.
        from_title: The span (or the query's entity) is a passage title's entity.
        relation_index: For a query built as ``entity + relation``: the relation phrase's
            position in the question (0 = first); ``None`` otherwise.
        verbatim_question: The query is the question itself.
    """

    kind: CandidateKind
    text: str
    origin: Origin = "question"
    source_title: str = ""
    source_rank: int | None = None
    source_age: int | None = None
    part_index: int | None = None
    from_title: bool = False
    relation_index: int | None = None
    verbatim_question: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("search", "answer"):
            raise ValueError(f"Candidate.kind: expected 'search' or 'answer', got {self.kind!r}")
        if not self.text.strip():
            raise ValueError(f"Candidate.text: expected a non-empty {self.kind}, got {self.text!r}")


@dataclass(frozen=True)
class ProposalState:
    """What a proposer may look at: the episode so far, as the agent has seen it.

    Attributes:
        question: The question.
        prompt: The inner env's rendered prompt (for language-model proposers).
        transcript: Everything after the prompt so far: actions and observations.
        queries: The queries issued, in order.
        results: The passages each search showed, one tuple per query, best first.
        turn: Actions taken so far (0 at the first decision).
        max_turns: The inner env's turn limit.
    """

    question: str
    prompt: str = ""
    transcript: str = ""
    queries: tuple[str, ...] = ()
    results: tuple[tuple[ShownPassage, ...], ...] = ()
    turn: int = 0
    max_turns: int = 4

    @property
    def last_turn(self) -> bool:
        """Whether this decision is the last the inner env allows (it must answer)."""
        return self.turn >= self.max_turns - 1


@runtime_checkable
class Proposer(Protocol):
    """Offers candidate actions for the next decision of an episode."""

    def propose(self, state: ProposalState) -> list[Candidate]:
        """Return candidates, most preferred first (the env keeps the first K it can use)."""
        ...


# --------------------------------------------------------------------------- heuristic
@dataclass(frozen=True)
class HeuristicProposer:
    """Queries from question spans and retrieved entities; answers from retrieved passages.

    Searches, in priority order: the question itself; then ``"{entity} {relation}"`` for each
    entity (those of the latest search's passage titles, best rank first, then the question's
    own entity spans) and each relation phrase of the question (:func:`relation_phrases`).
    Queries already issued are skipped.

    Answers, in priority order, for each search from the latest back and each passage by rank:
    the passage's title entity, then the cleaned values (:func:`clean_span`) of its first
    ``parts_per_passage`` ``key: value`` parts. Then the question's own entity spans (a
    comparison question's answer is one of them). Duplicates (case-insensitive) are dropped.
    At the last turn only answers are offered; before the first search, only searches and the
    question's entity spans.

    Attributes:
        max_searches: Most search candidates returned.
        max_answers: Most answer candidates returned.
        entities_per_search: Title entities taken from each search's results for new queries.
        parts_per_passage: ``key: value`` parts of each passage read for answer spans.
    """

    max_searches: int = 8
    max_answers: int = 8
    entities_per_search: int = 3
    parts_per_passage: int = 2

    def __post_init__(self) -> None:
        for name in ("max_searches", "max_answers", "entities_per_search", "parts_per_passage"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"HeuristicProposer.{name}: expected an int >= 0, got {value!r}")

    def propose(self, state: ProposalState) -> list[Candidate]:
        """Return searches then answers (see the class docstring)."""
        searches = [] if state.last_turn else self._searches(state)
        return searches[: self.max_searches] + self._answers(state)[: self.max_answers]

    def _searches(self, state: ProposalState) -> list[Candidate]:
        issued = {q.lower() for q in state.queries}
        out: list[Candidate] = []

        def add(candidate: Candidate) -> None:
            key = candidate.text.lower()
            if key not in issued:
                issued.add(key)
                out.append(candidate)

        add(Candidate("search", " ".join(state.question.split()), verbatim_question=True))
        relations = relation_phrases(state.question)
        entities: list[tuple[str, ShownPassage | None, int | None]] = []
        seen: set[str] = set()
        if state.results:
            for rank, passage in enumerate(state.results[-1]):
                name = title_entity(passage.title)
                if name and name.lower() not in seen and len(seen) < self.entities_per_search:
                    seen.add(name.lower())
                    entities.append((name, passage, rank))
        for name in entity_spans(state.question):
            if name.lower() not in seen:
                seen.add(name.lower())
                entities.append((name, None, None))
        for name, src, src_rank in entities:
            for r, relation in enumerate(relations):
                add(
                    Candidate(
                        "search",
                        f"{name} {relation}",
                        origin="retrieval" if src else "question",
                        source_title=src.title if src else "",
                        source_rank=src_rank,
                        source_age=0 if src else None,
                        from_title=src is not None,
                        relation_index=r,
                    )
                )
        return out

    def _answers(self, state: ProposalState) -> list[Candidate]:
        out: list[Candidate] = []
        seen: set[str] = set()

        def add(candidate: Candidate) -> None:
            if candidate.text and candidate.text.lower() not in seen:
                seen.add(candidate.text.lower())
                out.append(candidate)

        for age, passages in enumerate(reversed(state.results)):
            for rank, p in enumerate(passages):
                found = functools.partial(
                    Candidate,
                    "answer",
                    origin="retrieval",
                    source_title=p.title,
                    source_rank=rank,
                    source_age=age,
                )
                name = title_entity(p.title)
                if name:
                    add(found(name, from_title=True))
                for i, value in enumerate(passage_parts(p.text)[: self.parts_per_passage]):
                    span = clean_span(value)
                    if span:
                        add(found(span, part_index=i))
        for name in entity_spans(state.question):
            add(Candidate("answer", name, origin="question"))
        return out


# --------------------------------------------------------------------------- language model
@dataclass
class LLMProposer:
    """Candidates sampled from a language model, topped up by a fallback proposer.

    The model continues ``state.prompt + state.transcript`` (the inner env's prompt and the
    episode's actions and observations) ``num_samples`` times; each continuation is parsed with
    :func:`research_env.actions.parse_action` and every distinct search or answer becomes a
    candidate (``origin="model"``). The fallback's candidates follow, so the agent always has a
    choice even when the model's samples are malformed.

    Attributes:
        generator: Any :class:`~research_agents.generation.base.Generator`.
        tokenizer: The model's tokenizer (``encode`` / ``decode``).
        num_samples: Continuations sampled per decision.
        params: Sampling parameters (``stop`` defaults to the action stop strings).
        fallback: The proposer whose candidates follow the model's.
        max_model_candidates: Most model candidates kept.
    """

    generator: Generator
    tokenizer: Any
    num_samples: int = 4
    params: SamplingParams | None = None
    fallback: Proposer = field(default_factory=HeuristicProposer)
    max_model_candidates: int = 4

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"LLMProposer.num_samples: expected >= 1, got {self.num_samples!r}")

    def propose(self, state: ProposalState) -> list[Candidate]:
        """Return the model's distinct parsed actions, then the fallback's candidates."""
        from research_agents.generation.base import SamplingParams
        from research_env.actions import STOP_STRINGS, Answer, Search, parse_action

        params = self.params or SamplingParams(max_new_tokens=64, stop=STOP_STRINGS)
        ids = self.tokenizer.encode(state.prompt + state.transcript, add_special_tokens=False)
        generations = self.generator.generate([ids] * self.num_samples, params)
        model: list[Candidate] = []
        seen: set[tuple[str, str]] = set()
        for gen in generations:
            text = self.tokenizer.decode(gen.token_ids, skip_special_tokens=True)
            action = parse_action(text)
            candidate: Candidate | None = None
            if isinstance(action, Search) and not state.last_turn:
                candidate = Candidate("search", _one_line(action.query), origin="model")
            elif isinstance(action, Answer):
                candidate = Candidate("answer", _one_line(action.text), origin="model")
            if candidate is not None and candidate.text:
                key = (candidate.kind, candidate.text.lower())
                if key not in seen and len(model) < self.max_model_candidates:
                    seen.add(key)
                    model.append(candidate)
        rest = [c for c in self.fallback.propose(state) if (c.kind, c.text.lower()) not in seen]
        return model + rest


def _one_line(text: str) -> str:
    cleaned = " ".join(text.replace("<", " ").replace(">", " ").split())
    return cleaned.replace("{", "").replace("}", "") or "?"
