"""The env's ``info`` contract and the one record of a played episode.

Everything that crosses a module boundary about an episode is declared here, once:

* :class:`ResetInfo` and :class:`StepInfo`: what ``SearchQAEnv.reset`` and ``step`` put in
  ``info`` (typed, so a reader sees every key in one place);
* :class:`RewardComponentsInfo`: ``info["reward_components"]``;
* :class:`EpisodeStatistics`: ``info["episode"]`` from the episode-statistics wrapper
  (Gymnasium's ``r`` and ``l`` with SearchQA's fields);
* :class:`EpisodeRecord`: one played question, as the harness, the trainer's evaluation, the
  SB3 route, the TRL route and the episode-statistics wrapper report it;
* :func:`episode_record`: the one function that reads an episode's final ``info`` into a record.

A metric that someone reads off an episode is computed by :func:`episode_record` and nowhere
else, so ``em`` or ``searches`` mean the same in a leaderboard row, a trainer's ``eval/em`` and an
SB3 evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = [
    "EpisodeRecord",
    "EpisodeStatistics",
    "ResetInfo",
    "RewardComponentsInfo",
    "StepInfo",
    "episode_record",
]


class ResetInfo(TypedDict):
    """``info`` from ``SearchQAEnv.reset``."""

    question_id: str
    """The question's id in its dataset."""
    question_type: str | None
    """``metadata["type"]`` of the question (``capital``, ``bridge``, ...), if it has one."""
    index: int
    """The question's index in the env's split."""
    split: str
    """The split the env plays."""


class RewardComponentsInfo(TypedDict):
    """``info["reward_components"]``: the scores behind the reward, present on every step."""

    em: float
    """Exact match of the final answer after normalisation (0 before an answer)."""
    f1: float
    """Token F1 of the final answer, best over the golden answers."""
    sub_em: float
    """1 if a normalised golden answer occurs in the normalised answer."""
    format_ok: bool
    """Whether the response so far followed the template's (or the protocol's) format."""
    answer_in_retrieval: bool
    """Whether a golden answer appeared in a passage the episode's searches showed."""
    support_recall: float | None
    """Share of the question's supporting passages shown so far (``None``: it lists none)."""
    bridge_recall: float | None
    """Share of the entities the question goes through but does not name (``metadata
    ["entities"]``: a bridge question's linking country) that the queries named so far
    (``None``: there are none)."""
    hops: int | None
    """The question's hop count (``metadata["hops"]``, else one per supporting passage listed
    in ``metadata["support"]``; ``None``: neither): the fewest searches that can show all of its
    evidence."""


class StepInfo(TypedDict, total=False):
    """``info`` from ``SearchQAEnv.step``; the keys after ``reward_components`` come at the end."""

    turn: int
    """Actions taken so far in the episode, this one included."""
    action_type: str
    """``search``, ``answer`` or ``invalid``."""
    query: str
    """The search query (search actions)."""
    query_truncated: bool
    """Whether the query was cut to ``max_query_chars``."""
    retrieved_ids: list[str]
    """Ids of the passages the search returned, best first."""
    retrieved_titles: list[str]
    """Their titles."""
    retrieval_error: str | None
    """The retriever's error message, when a search failed."""
    retrieval_error_kind: str | None
    """``timeout``, ``connection``, ``server``, ``rejected``, ``bad_response``,
    ``not_recorded`` or ``unavailable``."""
    invalid_reason: str
    """Why an action was invalid (``no_action_tag``, ``unclosed_tag``, ...)."""
    invalid_detail: str
    """A sentence saying what was wrong with it."""
    prediction: str | None
    """The extracted answer (answer actions)."""
    num_searches: int
    """Searches so far (every step)."""
    reward_components: RewardComponentsInfo
    """The scores behind the reward (every step)."""
    golden_answers: list[str]
    """The question's accepted answers (last step)."""
    retrieval_failed: bool
    """Whether any search of the episode failed (last step)."""
    invalid_actions: int
    """Invalid actions in the episode (last step)."""
    end_reason: str
    """``answer``, ``invalid`` or ``max_turns`` (last step)."""


class EpisodeStatistics(TypedDict):
    """``info["episode"]`` from :class:`~research_env.wrappers.RecordEpisodeStatistics`."""

    r: float
    """The episode's return (SearchQA rewards only the last step, so: the terminal reward)."""
    l: int  # noqa: E741 (Gymnasium's key)
    """The episode's length in steps (turns)."""
    searches: int
    """Search actions taken."""
    em: float
    """Exact match of the final answer (0 without one)."""
    f1: float
    """Token F1 of the final answer (0 without one)."""
    sub_em: float
    """Whether a golden answer occurs in the final answer."""
    format_ok: bool
    """Whether the whole response followed the template's format."""
    answer_in_retrieval: bool
    """Whether a golden answer appeared in any retrieved passage."""
    end_reason: str | None
    """``answer``, ``invalid`` or ``max_turns``."""
    retrieval_failed: bool
    """Whether a search hit a retrieval error."""
    question_id: str | None
    """The id of the episode's question (from the reset info)."""


@dataclass
class EpisodeRecord:
    """Everything about one played question."""

    index: int
    """The question's index in the env's split."""
    question_id: str
    question: str
    question_type: str | None
    golden_answers: list[str]
    prediction: str | None
    """The extracted answer (``None`` when the episode ended without one)."""
    reward: float
    """The env's terminal reward under its configured reward."""
    em: float
    f1: float
    sub_em: float
    format_ok: bool
    answer_in_retrieval: bool
    searches: int
    turns: int
    end_reason: str | None
    """``answer``, ``invalid``, ``max_turns``; ``token_budget`` for a GRPO rollout cut short by
    its token budget; ``None`` if the episode never ended."""
    retrieval_failed: bool = False
    support_recall: float | None = None
    """Share of the question's supporting passages the searches showed (``None``: it lists
    none; ``metadata["support"]``)."""
    bridge_recall: float | None = None
    """Share of the question's unnamed entities its queries named (``None``: it has none)."""
    hops: int | None = None
    """The question's hop count (``None``: its metadata gives none)."""
    invalid_actions: int = 0
    """Invalid actions the env answered with a corrective observation."""
    actions: list[str] = field(default_factory=list)
    """The agent's actions, in order."""
    stats: dict[str, float] = field(default_factory=dict)
    """Whatever the agent reported about itself (e.g. ``generated_tokens``)."""
    log: list[list[str]] = field(default_factory=list)
    """``[role, text]`` pairs: each action and the env's observation after it (the retrieved
    passages as the agent read them), in order; ``searchqa view`` shows them."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of a per-question ``.jsonl``)."""
        return dict(self.__dict__)


def episode_record(
    start: Mapping[str, Any] | None,
    info: Mapping[str, Any],
    *,
    question: str,
    reward: float,
    actions: Iterable[str] = (),
    turns: int | None = None,
    stats: Mapping[str, float] | None = None,
    golden_answers: Iterable[str] | None = None,
    end_reason: str | None = None,
) -> EpisodeRecord:
    """Read an episode's reset info and final step info into its record.

    Args:
        start: The :class:`ResetInfo` of the episode (``index``, ``question_id``,
            ``question_type``); ``None`` (or a key left out) where the caller kept none and
            wants only the outcome: ``index`` -1, ``question_id`` empty.
        info: The :class:`StepInfo` of its last step.
        question: The question text.
        reward: The episode's terminal reward.
        actions: The actions it took, in order.
        turns: Actions taken (default: ``len(actions)``), for callers that keep no texts.
        stats: What the agent reported about itself (``generated_tokens``, ...).
        golden_answers: The accepted answers, for an episode cut short before the env's last
            step reported them (default: ``info["golden_answers"]``).
        end_reason: Overrides ``info["end_reason"]`` (``token_budget`` for a rollout the
            trainer stopped).

    Examples:
        >>> start = {"index": 3, "question_id": "q3", "question_type": "capital"}
        >>> info = {"num_searches": 1, "end_reason": "answer", "prediction": "Paris",
        ...         "golden_answers": ["Paris"], "reward_components": {"em": 1.0, "f1": 1.0,
        ...         "sub_em": 1.0, "format_ok": True, "answer_in_retrieval": True}}
        >>> r = episode_record(start, info, question="Capital of France?", reward=1.0,
        ...                    actions=["<search> France </search>", "<answer> Paris </answer>"])
        >>> r.em, r.searches, r.turns, r.end_reason
        (1.0, 1, 2, 'answer')
    """
    acts = list(actions)
    start = start or {}
    rc = info.get("reward_components") or {}
    golds = info.get("golden_answers", []) if golden_answers is None else golden_answers
    recall = rc.get("support_recall")
    bridge = rc.get("bridge_recall")
    hops = rc.get("hops")
    return EpisodeRecord(
        index=int(start.get("index", -1)),
        question_id=str(start.get("question_id") or ""),
        question=question,
        question_type=start.get("question_type"),
        golden_answers=list(golds),
        prediction=info.get("prediction"),
        reward=float(reward),
        em=float(rc.get("em", 0.0)),
        f1=float(rc.get("f1", 0.0)),
        sub_em=float(rc.get("sub_em", 0.0)),
        format_ok=bool(rc.get("format_ok", False)),
        answer_in_retrieval=bool(rc.get("answer_in_retrieval", False)),
        searches=int(info.get("num_searches", 0)),
        turns=len(acts) if turns is None else int(turns),
        end_reason=end_reason if end_reason is not None else info.get("end_reason"),
        retrieval_failed=bool(info.get("retrieval_failed", False)),
        support_recall=None if recall is None else float(recall),
        bridge_recall=None if bridge is None else float(bridge),
        hops=None if hops is None else int(hops),
        invalid_actions=int(info.get("invalid_actions", 0)),
        actions=acts,
        stats=dict(stats or {}),
    )
