"""Trajectory-level reward shaping for ``GRPOConfig.reward_hook`` (documented, reported beside EM).

:func:`em_search_cost` is the reward of the ``factbook-smollm2-multihop`` preset: exact match,
scaled down by a small cost per search beyond the first and per invalid action (an action
without a closed tag, answered by a corrective observation under ``invalid_action="correct"``),
paid only out of a correct answer::

    reward = EM * max(0, 1 - SEARCH_COST * (searches - 1) - INVALID_COST * invalid_actions)

A wrong answer scores 0 however many searches it took, so the cost never makes answering early
and wrong better than searching again; among right answers it prefers the one with fewer
searches (single-hop questions: one). The plain EM of every rollout stays in the logs as
``reward/em`` beside the shaped ``reward/mean``.

:func:`em_search_cost_retrieval` adds partial credit for the search itself: an episode whose
searches retrieved a passage holding a golden answer scores at least ``RETRIEVAL_CREDIT``, right
answer or not::

    reward = max(em_search_cost, RETRIEVAL_CREDIT * answer_in_retrieval)

On a bridge question the question itself as the query finds the answer 1% of the time; only a
second search for the bridge entity does. So this pays the step that multi-hop needs before
the policy can read the answer off it. A right answer still scores far more (0.8-1).

:func:`em_search_cost_support` pays for evidence instead of for the answer's string: the share
of the question's supporting passages (``metadata["support"]``, one per hop; the env reports it
as ``reward_components["support_recall"]``) that the episode's searches showed::

    reward = max(em_search_cost, SUPPORT_CREDIT * support_recall)

One search on a bridge question finds at most its first hop (recall 0.5); only a second query
that names the bridge entity finds the second, so the two-search episode outscores the
one-search one even when both answer wrong. This is a process reward in the sense of StepSearch
(gold evidence, known to the reward and never shown to the policy); plain EM is logged beside it.

:func:`em_search_cost_bridge` adds a rung below that: credit for a query that names the
question's hidden entity (``reward_components["bridge_recall"]``: a bridge question's linking
country, read off the first result), whether or not that query also asks for the right field::

    reward = max(em_search_cost, SUPPORT_CREDIT * support_recall + BRIDGE_CREDIT * bridge_recall)

A bridge rollout that finds the first hop scores 0.2; one that then searches ``Chile capital``
0.4; ``Chile currency``, which shows the second hop's passage, 0.6; a right answer 0.9. The
support credit alone pays nothing until the field is right too, and a 135M policy that names
the entity at all does so with the first query's field (docs/results.md).

:func:`em_search_cost_bridge_valid` charges invalid actions on the credit as well::

    reward = max(em_search_cost, credit - INVALID_COST * invalid_actions, 0)

Under :func:`em_search_cost_bridge` an invalid action cost only a right answer, so a wrong
episode could spend a turn on one for free: stage 2 learned to write an empty or unclosed
answer on turn 2 (corrected by the env) and search again on turn 3, never answering before the
last turn. Here the wasted turn costs on every path.

:func:`em_hop_cost_bridge` is :func:`em_search_cost_bridge` with the search cost counted
against the question's own number of hops (``reward_components["hops"]``: one supporting
passage per hop) instead of against one search, and larger::

    cost   = HOP_SEARCH_COST * max(0, searches - hops) + INVALID_COST * invalid_actions
    credit = SUPPORT_CREDIT * support_recall + BRIDGE_CREDIT * bridge_recall * (hops >= 2)
    reward = max(EM * max(0, 1 - cost), credit)

A right single-hop answer scores 1.0 after one search and 0.7 after two; a right bridge answer
1.0 after two. So the two-search habit that :func:`em_search_cost_bridge` teaches everywhere
costs where it is not needed and nowhere else. The bridge credit is paid only on questions
with two hops or more: on a one-hop reverse question ("the country whose capital is Lusaka")
the hidden entity is the answer, and a query naming it earned the credit whatever the answer.
"""

from __future__ import annotations

from research_agents.grpo.rollout import Trajectory
from research_env.records import EpisodeRecord

__all__ = [
    "BRIDGE_CREDIT",
    "HOP_SEARCH_COST",
    "INVALID_COST",
    "RETRIEVAL_CREDIT",
    "SEARCH_COST",
    "SUPPORT_CREDIT",
    "em_hop_cost_bridge",
    "em_search_cost",
    "em_search_cost_bridge",
    "em_search_cost_bridge_valid",
    "em_search_cost_retrieval",
    "em_search_cost_support",
]

SEARCH_COST = 0.1
"""Share of a correct answer's reward taken away per search beyond the first."""

INVALID_COST = 0.1
"""Share of a correct answer's reward taken away per invalid action."""

RETRIEVAL_CREDIT = 0.2
"""Reward of an episode whose searches found a golden answer but that did not answer it."""

SUPPORT_CREDIT = 0.4
"""Reward of a wrong answer whose searches showed every supporting passage (scaled by recall)."""

BRIDGE_CREDIT = 0.2
"""Reward added to the support credit when the queries named every entity the question hides."""

HOP_SEARCH_COST = 0.3
"""Share of a correct answer's reward taken away per search beyond the question's hops."""


def em_search_cost(trajectory: Trajectory) -> float:
    """EM of the answer, less the search and invalid-action costs (never below 0).

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``.

    Examples:
        >>> t = Trajectory(prompt_ids=[], info={"reward_components": {"em": 1.0},
        ...                                     "num_searches": 2})
        >>> round(em_search_cost(t), 3)
        0.9
        >>> t.info["invalid_actions"] = 1
        >>> round(em_search_cost(t), 3)
        0.8
        >>> em_search_cost(Trajectory(prompt_ids=[], info={"num_searches": 3}))
        0.0
    """
    return _em_less_costs(trajectory.record())


def em_search_cost_retrieval(trajectory: Trajectory) -> float:
    """:func:`em_search_cost`, or ``RETRIEVAL_CREDIT`` if a search found an answer (the larger).

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``.

    Examples:
        >>> found = {"em": 0.0, "answer_in_retrieval": True}
        >>> em_search_cost_retrieval(Trajectory(prompt_ids=[], info={"reward_components": found}))
        0.2
        >>> right = {"em": 1.0, "answer_in_retrieval": True}
        >>> info = {"reward_components": right, "num_searches": 2}
        >>> round(em_search_cost_retrieval(Trajectory(prompt_ids=[], info=info)), 3)
        0.9
    """
    r = trajectory.record()
    return max(_em_less_costs(r), RETRIEVAL_CREDIT * r.answer_in_retrieval)


def em_search_cost_support(trajectory: Trajectory) -> float:
    """:func:`em_search_cost`, or ``SUPPORT_CREDIT`` times the support recall (the larger).

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``; plain :func:`em_search_cost` for questions that list
        no supporting passages.

    Examples:
        >>> one_hop = {"em": 0.0, "support_recall": 0.5}
        >>> em_search_cost_support(Trajectory(prompt_ids=[], info={"reward_components": one_hop}))
        0.2
        >>> both = {"em": 0.0, "support_recall": 1.0}
        >>> em_search_cost_support(Trajectory(prompt_ids=[], info={"reward_components": both}))
        0.4
        >>> right = {"em": 1.0, "support_recall": 1.0}
        >>> info = {"reward_components": right, "num_searches": 2}
        >>> round(em_search_cost_support(Trajectory(prompt_ids=[], info=info)), 3)
        0.9
    """
    r = trajectory.record()
    return max(_em_less_costs(r), SUPPORT_CREDIT * (r.support_recall or 0.0))


def em_search_cost_bridge(trajectory: Trajectory) -> float:
    """:func:`em_search_cost_support` plus ``BRIDGE_CREDIT`` times the bridge recall.

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``; :func:`em_search_cost_support` for questions that hide
        no entity.

    Examples:
        >>> def shaped(**rc):
        ...     t = Trajectory(prompt_ids=[], info={"reward_components": rc, "num_searches": 2})
        ...     return round(em_search_cost_bridge(t), 3)
        >>> shaped(em=0.0, support_recall=0.5, bridge_recall=0.0)  # first hop only
        0.2
        >>> shaped(em=0.0, support_recall=0.5, bridge_recall=1.0)  # "Chile capital"
        0.4
        >>> shaped(em=0.0, support_recall=1.0, bridge_recall=1.0)  # "Chile currency"
        0.6
        >>> shaped(em=1.0, support_recall=1.0, bridge_recall=1.0)
        0.9
    """
    r = trajectory.record()
    credit = SUPPORT_CREDIT * (r.support_recall or 0.0) + BRIDGE_CREDIT * (r.bridge_recall or 0.0)
    return max(_em_less_costs(r), credit)


def em_search_cost_bridge_valid(trajectory: Trajectory) -> float:
    """:func:`em_search_cost_bridge` whose evidence credit also pays for invalid actions.

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``.

    Examples:
        >>> def shaped(invalid, **rc):
        ...     info = {"reward_components": rc, "num_searches": 2, "invalid_actions": invalid}
        ...     return round(em_search_cost_bridge_valid(Trajectory(prompt_ids=[], info=info)), 3)
        >>> shaped(0, em=0.0, support_recall=0.5, bridge_recall=1.0)  # "Chile capital"
        0.4
        >>> shaped(1, em=0.0, support_recall=0.5, bridge_recall=1.0)  # and a turn wasted
        0.3
        >>> shaped(1, em=1.0, support_recall=1.0, bridge_recall=1.0)  # charged once
        0.8
    """
    r = trajectory.record()
    credit = SUPPORT_CREDIT * (r.support_recall or 0.0) + BRIDGE_CREDIT * (r.bridge_recall or 0.0)
    return max(_em_less_costs(r), credit - INVALID_COST * r.invalid_actions, 0.0)


def em_hop_cost_bridge(trajectory: Trajectory) -> float:
    """EM less ``HOP_SEARCH_COST`` per search beyond the question's hops, or the evidence credit.

    Args:
        trajectory: A finished episode (its ``info`` holds the env's reward components).

    Returns:
        The shaped reward, in ``[0, 1]``. A question without a hop count counts as one hop.

    Examples:
        >>> def shaped(searches, **rc):
        ...     info = {"reward_components": rc, "num_searches": searches}
        ...     return round(em_hop_cost_bridge(Trajectory(prompt_ids=[], info=info)), 3)
        >>> shaped(1, em=1.0, support_recall=1.0, bridge_recall=None, hops=1)
        1.0
        >>> shaped(2, em=1.0, support_recall=1.0, bridge_recall=None, hops=1)  # one too many
        0.7
        >>> shaped(2, em=1.0, support_recall=1.0, bridge_recall=1.0, hops=2)  # a bridge
        1.0
        >>> shaped(2, em=0.0, support_recall=0.5, bridge_recall=1.0, hops=2)  # "Chile capital"
        0.4
        >>> shaped(2, em=0.0, support_recall=1.0, bridge_recall=1.0, hops=1)  # reverse, wrong
        0.4
    """
    r = trajectory.record()
    hops = r.hops or 1
    bridge = BRIDGE_CREDIT * (r.bridge_recall or 0.0) if hops >= 2 else 0.0
    credit = SUPPORT_CREDIT * (r.support_recall or 0.0) + bridge
    return max(_em_less_costs(r, free_searches=hops, search_cost=HOP_SEARCH_COST), credit)


def _em_less_costs(
    r: EpisodeRecord, free_searches: int = 1, search_cost: float = SEARCH_COST
) -> float:
    """EM less ``search_cost`` per search beyond ``free_searches`` and the invalid-action cost.

    With the defaults, :func:`em_search_cost` of an episode already read into its record.
    """
    cost = search_cost * max(0, r.searches - free_searches) + INVALID_COST * r.invalid_actions
    return r.em * max(0.0, 1.0 - cost)
