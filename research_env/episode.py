"""Per-episode bookkeeping for :class:`~research_env.env.SearchQAEnv`."""

from __future__ import annotations

from dataclasses import dataclass, field

from research_env.data.types import Passage, QAExample
from research_env.rewards import answer_in_passages


@dataclass
class Episode:
    """Everything the env remembers about the episode in progress.

    Attributes:
        example: The question being answered.
        prompt: The formatted prompt the agent started generating from.
        response: The agent's response so far: its actions with the observations interleaved,
            exactly as a token-level agent's context holds them after the prompt.
        turns: Number of actions taken.
        searches: Number of search actions that reached the retriever.
        retrieved_ids: Ids of every passage shown, in order (duplicates kept).
        answer_in_retrieval: Whether a golden answer appeared in some shown passage.
        support_recall: Share of the question's supporting passages (``metadata["support"]``,
            passage ids) shown so far; ``None`` for a question that lists none.
        queries: The episode's search queries, in order.
        retrieval_failed: Whether any retrieval call raised ``RetrievalError``.
        invalid_actions: Number of actions that parsed as invalid.
        done: Whether the episode has terminated or been truncated.
        log: ``(role, text)`` pairs for ``render()``: role is "action" or "observation".
    """

    example: QAExample
    prompt: str
    response: str = ""
    turns: int = 0
    searches: int = 0
    retrieved_ids: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    answer_in_retrieval: bool = False
    retrieval_failed: bool = False
    invalid_actions: int = 0
    done: bool = False
    log: list[tuple[str, str]] = field(default_factory=list)

    def record_action(self, action: str) -> None:
        """Append the agent's action to the response and the log."""
        self.turns += 1
        self.response += action
        self.log.append(("action", action))

    def record_observation(self, observation: str) -> None:
        """Append an observation to the response and the log."""
        if observation:
            self.response += observation
            self.log.append(("observation", observation))

    @property
    def support_recall(self) -> float | None:
        """Share of the question's supporting passages shown so far (``None``: none listed)."""
        support = self.example.metadata.get("support")
        if not isinstance(support, list) or not support:
            return None
        wanted = {str(s) for s in support}
        return len(wanted.intersection(self.retrieved_ids)) / len(wanted)

    @property
    def hops(self) -> int | None:
        """The question's hop count, or ``None`` when its metadata gives none.

        ``metadata["hops"]`` where the dataset has it (Factbook, MuSiQue), else the number of
        supporting passages it lists (one per hop).
        """
        hops = self.example.metadata.get("hops")
        if isinstance(hops, int) and not isinstance(hops, bool) and hops > 0:
            return hops
        support = self.example.metadata.get("support")
        if not isinstance(support, list) or not support:
            return None
        return len(support)

    @property
    def bridge_recall(self) -> float | None:
        """Share of the question's unnamed entities that a query has named so far.

        The entities are ``metadata["entities"]`` (the countries a Factbook question goes
        through); those the question itself names are left out, so what remains is what a
        search must find first: a bridge question's linking country, or a reverse question's
        answer. ``None`` when none remain. Names match case-insensitively as substrings.
        """
        entities = self.example.metadata.get("entities")
        if not isinstance(entities, list):
            return None
        question = self.example.question.lower()
        hidden = {str(e).lower() for e in entities if str(e).lower() not in question}
        if not hidden:
            return None
        said = " ".join(self.queries).lower()
        return sum(e in said for e in hidden) / len(hidden)

    def record_passages(self, passages: list[Passage]) -> None:
        """Note what was retrieved, and whether a golden answer is in it."""
        self.searches += 1
        self.retrieved_ids.extend(p.id for p in passages)
        if not self.answer_in_retrieval:
            self.answer_in_retrieval = answer_in_passages(passages, self.example.golden_answers)
