"""The choice env's observation vector: its layout and the features of each candidate.

One observation is a flat float32 vector in ``[-1, 1]``::

    [ question embedding (D) | context embedding (D) | global features (G) |
      slot 0: candidate embedding (D), candidate features (S) | ... | slot K-1: ... ]

``D`` is the encoder's size (MiniLM: 384), ``G = len(GLOBAL_FEATURES)``,
``S = len(CANDIDATE_FEATURES)`` and ``K`` the number of candidate slots. Every feature is
computed from what the agent has seen (the question, its queries, the passages shown); none
uses the golden answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from research_agents.sb3.proposers import Candidate, content_words

__all__ = ["CANDIDATE_FEATURES", "GLOBAL_FEATURES", "ObsLayout", "candidate_features"]

GLOBAL_FEATURES: tuple[str, ...] = ("turn", "searches", "last_turn", "valid_slots")
"""Per-step features: turns taken / max_turns, searches / max_turns, 1 on the last turn (only
answers are offered), number of real candidates / K."""

CANDIDATE_FEATURES: tuple[str, ...] = (
    "is_search",
    "is_answer",
    "is_pad",
    "cos_question",
    "cos_context",
    "cos_question_source",
    "in_question",
    "covers_question",
    "source_covers_question",
    "source_rank",
    "source_recency",
    "part",
    "from_title",
    "from_question",
    "relation_position",
    "verbatim_question",
    "length",
)
"""Per-candidate features, in order:

- ``is_search`` / ``is_answer``: the kind; ``is_pad``: a padding slot (a copy of a real one);
- ``cos_question`` / ``cos_context``: cosine of the candidate's embedding with the question's
  and the context summary's; ``cos_question_source``: of the question with the title of the
  passage the candidate came from (0 without one);
- ``in_question``: fraction of the candidate's words that occur in the question;
  ``covers_question``: fraction of the question's content words in the candidate;
  ``source_covers_question``: fraction of them in the source passage's title;
- ``source_rank``: 1 / (1 + rank of the source passage), ``source_recency``: 1 / (1 + searches
  since it was shown), ``part``: 1 / (1 + index of the ``key: value`` part the span came from),
  each 0 when not applicable;
- ``from_title``: the span (or the query's entity) is a title's entity; ``from_question``: it
  came from the question's words; ``relation_position``: 1 / (1 + position of the query's relation
  phrase in the question), 0 if none; ``verbatim_question``: the query is the question;
- ``length``: words / 10, at most 1.
"""

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _inv(value: int | None) -> float:
    return 0.0 if value is None else 1.0 / (1.0 + value)


@dataclass(frozen=True)
class ObsLayout:
    """Where everything sits in the flat observation (see the module docstring).

    Attributes:
        num_candidates: ``K``, the number of candidate slots (the size of ``Discrete(K)``).
        embed_dim: ``D``, the size of one embedding.
    """

    num_candidates: int
    embed_dim: int

    @property
    def global_size(self) -> int:
        """``G``."""
        return len(GLOBAL_FEATURES)

    @property
    def feature_size(self) -> int:
        """``S``."""
        return len(CANDIDATE_FEATURES)

    @property
    def head_size(self) -> int:
        """Size of the part before the slots: ``2 D + G``."""
        return 2 * self.embed_dim + self.global_size

    @property
    def slot_size(self) -> int:
        """Size of one slot: ``D + S``."""
        return self.embed_dim + self.feature_size

    @property
    def size(self) -> int:
        """Size of the whole observation."""
        return self.head_size + self.num_candidates * self.slot_size

    @classmethod
    def infer(cls, size: int, num_candidates: int) -> ObsLayout:
        """Recover the layout from the observation size and ``K``.

        Raises:
            ValueError: If no embedding size fits.

        >>> ObsLayout.infer(ObsLayout(16, 384).size, 16)
        ObsLayout(num_candidates=16, embed_dim=384)
        """
        fixed = len(GLOBAL_FEATURES) + num_candidates * len(CANDIDATE_FEATURES)
        dim, rest = divmod(size - fixed, 2 + num_candidates)
        if rest or dim < 1:
            raise ValueError(
                f"an observation of size {size} does not fit the choice-env layout with "
                f"{num_candidates} candidates"
            )
        return cls(num_candidates, dim)


def candidate_features(
    candidate: Candidate,
    *,
    question: str,
    cos_question: float,
    cos_context: float,
    cos_question_source: float,
    is_pad: bool = False,
) -> npt.NDArray[np.float32]:
    """The :data:`CANDIDATE_FEATURES` of one candidate, as a float32 vector.

    Args:
        candidate: The candidate.
        question: The question.
        cos_question: Cosine of the candidate's and the question's embeddings.
        cos_context: Cosine of the candidate's and the context summary's embeddings.
        cos_question_source: Cosine of the question's and the source title's embeddings.
        is_pad: Whether the slot is a padding copy.

    Returns:
        Shape ``(len(CANDIDATE_FEATURES),)``, values in ``[-1, 1]``.
    """
    q_words = _words(question)
    q_content = set(content_words(question))
    c_words = _words(candidate.text)
    t_words = _words(candidate.source_title)
    values = [
        candidate.kind == "search",
        candidate.kind == "answer",
        is_pad,
        cos_question,
        cos_context,
        cos_question_source,
        len(c_words & q_words) / len(c_words) if c_words else 0.0,
        len(q_content & c_words) / len(q_content) if q_content else 0.0,
        len(q_content & t_words) / len(q_content) if q_content else 0.0,
        _inv(candidate.source_rank),
        _inv(candidate.source_age),
        _inv(candidate.part_index),
        candidate.from_title,
        candidate.origin == "question",
        _inv(candidate.relation_index),
        candidate.verbatim_question,
        min(len(candidate.text.split()), 10) / 10,
    ]
    return np.clip(np.asarray(values, dtype=np.float32), -1.0, 1.0)
