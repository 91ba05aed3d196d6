"""Answer scoring (EM, token F1, substring EM) and the reward presets built on them.

Scores follow the SQuAD / HotpotQA conventions used by FlashRAG, Search-R1 and ReSearch, so
numbers are comparable with theirs. :func:`normalize_answer` is SQuAD's normalisation plus
Unicode handling:

1. NFKC normalisation (full-width ``Ｌｉｍａ`` becomes ``Lima``, ligatures are split);
2. lower-casing (``str.lower``, as SQuAD; not ``casefold``, so ``ß`` stays ``ß``);
3. deleting punctuation: ASCII ``string.punctuation`` (as SQuAD, symbols like ``$`` and ``+``
   included) and every Unicode punctuation character (categories ``P*``: ``¿``, ``«``, ``–``,
   ``。``...), plus invisible control and format characters (zero-width spaces, NUL...).
   Characters are deleted, not replaced by a space: ``U.S.`` becomes ``us``;
4. dropping the articles ``a``, ``an``, ``the`` (whole tokens only);
5. collapsing whitespace; and a final NFKC so the result is a fixed point.

Accents are **kept**: ``Bogotá`` does not match ``Bogota``. Datasets that want accent-folded
matches list the folded form as an alias (the Factbook world does), which keeps the two
spellings distinguishable where that matters.

Presets (:data:`REWARD_PRESETS`, picked by name with :func:`get_reward_fn`):

=================== =====================================================================
``em`` (default)    1.0 if the normalised answer equals a normalised golden answer, else 0.0
``f1``              token F1, the maximum over golden answers
``sub_em``          1.0 if a normalised golden answer occurs in the normalised prediction
``research``        ReSearch: 0.0 if the format is invalid, else F1 if F1 > 0, else 0.1
``searchr1_format`` Search-R1 v0.3, format-aware: see :func:`searchr1_format_reward`
=================== =====================================================================
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from research_env.data.types import Passage

__all__ = [
    "REWARD_PRESETS",
    "RewardComponents",
    "RewardFn",
    "em_reward",
    "exact_match",
    "f1_reward",
    "f1_score",
    "get_reward_fn",
    "normalize_answer",
    "research_reward",
    "score_answer",
    "searchr1_format_reward",
    "sub_em",
    "sub_em_reward",
]

_ARTICLES = frozenset({"a", "an", "the"})
_ASCII_PUNCTUATION = frozenset(string.punctuation)
_YES_NO = frozenset({"yes", "no", "noanswer"})


class _DeleteTable(dict[int, "int | None"]):
    """A ``str.translate`` table that deletes punctuation and invisible characters.

    Filled lazily, one code point at a time, so there is no import-time scan of Unicode; at most
    :data:`_DELETE_CACHE_MAX` code points are remembered (text from clients can name all 1.1M),
    the others are classified on every use.
    """

    def __missing__(self, code: int) -> int | None:
        ch = chr(code)
        if ch.isspace():
            value: int | None = code
        elif ch in _ASCII_PUNCTUATION:
            value = None
        else:
            category = unicodedata.category(ch)
            value = None if category[0] == "P" or category in ("Cc", "Cf", "Cs") else code
        if len(self) < _DELETE_CACHE_MAX:
            self[code] = value
        return value


_DELETE_CACHE_MAX = 65536
_DELETE = _DeleteTable()


def normalize_answer(s: str) -> str:
    """Normalise an answer for comparison (SQuAD-style, Unicode-aware; see the module docs).

    Args:
        s: Any text.

    Returns:
        The normalised text: lower-case tokens separated by single spaces.

    Examples:
        >>> normalize_answer("The  Lima!")
        'lima'
        >>> normalize_answer("Ｌｉｍａ")
        'lima'
        >>> normalize_answer("Bogotá, D.C.")
        'bogotá dc'
        >>> normalize_answer("¿Qué?  «Sí»")
        'qué sí'
        >>> normalize_answer("a an the")
        ''
    """
    text = unicodedata.normalize("NFKC", s).lower().translate(_DELETE)
    text = " ".join(t for t in text.split() if t not in _ARTICLES)
    return unicodedata.normalize("NFKC", text)


def _golds(golden_answers: str | Sequence[str]) -> list[str]:
    return [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)


def exact_match(prediction: str, golden_answers: str | Sequence[str]) -> float:
    """Exact match after normalisation: 1.0 if the prediction equals any golden answer.

    Two texts that both normalise to the empty string match (SQuAD v2); no golden answers
    gives 0.0.

    Args:
        prediction: The predicted answer.
        golden_answers: One accepted answer, or several.

    Returns:
        1.0 or 0.0.

    Examples:
        >>> exact_match("the Lima.", ["Peru", "lima"])
        1.0
        >>> exact_match("Lima, Peru", "Lima")
        0.0
    """
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) == pred for g in _golds(golden_answers)))


def _f1(pred: str, gold: str) -> float:
    """Token F1 between two normalised strings (HotpotQA's rules)."""
    if (pred in _YES_NO or gold in _YES_NO) and pred != gold:
        return 0.0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golden_answers: str | Sequence[str]) -> float:
    """Token-level F1 between the normalised prediction and golden answers (max over golds).

    Conventions: tokens are counted with multiplicity (SQuAD); if either side normalises to
    no tokens the score is 1.0 when both do and 0.0 otherwise (SQuAD v2); and, as in
    HotpotQA, when either side is ``yes``, ``no`` or ``noanswer`` the two must be equal
    (no partial credit for ``"no"`` against ``"no way"``). No golden answers gives 0.0.

    Args:
        prediction: The predicted answer.
        golden_answers: One accepted answer, or several.

    Returns:
        The best F1 in [0, 1].

    Examples:
        >>> f1_score("Lima city", "Lima")  # precision 1/2, recall 1/1
        0.6666666666666666
        >>> f1_score("Lima", ["Cusco", "Lima Peru"])
        0.6666666666666666
        >>> f1_score("no", "no way")
        0.0
    """
    pred = normalize_answer(prediction)
    return max((_f1(pred, normalize_answer(g)) for g in _golds(golden_answers)), default=0.0)


def sub_em(prediction: str, golden_answers: str | Sequence[str]) -> float:
    """Substring exact match: 1.0 if a normalised golden answer occurs in the prediction.

    The match is on token boundaries (``"lima"`` is in ``"it is lima"`` but not in
    ``"limassol"``). A golden answer that normalises to the empty string matches only an
    empty prediction (as for :func:`exact_match`).

    Args:
        prediction: The predicted answer.
        golden_answers: One accepted answer, or several.

    Returns:
        1.0 or 0.0.

    Examples:
        >>> sub_em("It is Lima, of course.", "lima")
        1.0
        >>> sub_em("Limassol", "Lima")
        0.0
    """
    pred = normalize_answer(prediction)
    padded = f" {pred} "
    for g in _golds(golden_answers):
        gold = normalize_answer(g)
        if (gold and f" {gold} " in padded) or gold == pred:
            return 1.0
    return 0.0


def answer_in_passages(passages: Sequence[Passage], golden_answers: str | Sequence[str]) -> bool:
    """Whether a golden answer occurs (as :func:`sub_em` defines it) in a passage's title or text.

    This is the "answer in retrieval" diagnostic: did the search surface the answer at all?

    Examples:
        >>> answer_in_passages([Passage("p", "Peru — Capital", "name: Lima")], ["Lima"])
        True
        >>> answer_in_passages([Passage("p", "Cyprus", "Limassol port")], ["Lima"])
        False
    """
    return any(sub_em(f"{p.title} {p.text}", golden_answers) > 0 for p in passages)


@dataclass(frozen=True)
class RewardComponents:
    """The scores of one answer, from which a reward preset computes the reward.

    Attributes:
        em: Exact match (0.0 or 1.0).
        f1: Token F1 in [0, 1].
        sub_em: Substring exact match (0.0 or 1.0).
        format_ok: Whether the response's format was valid (as judged by the caller).
    """

    em: float
    f1: float
    sub_em: float
    format_ok: bool


def score_answer(
    prediction: str | None, golden_answers: str | Sequence[str], format_ok: bool
) -> RewardComponents:
    """Score a prediction against the golden answers.

    Args:
        prediction: The answer text, or ``None`` when the agent gave no answer.
        golden_answers: One accepted answer, or several.
        format_ok: Whether the response's format was valid.

    Returns:
        The components. With no prediction every score is 0.0 and ``format_ok`` is
        ``False`` (a response without an answer cannot be well formatted).

    Examples:
        >>> score_answer("Lima", ["lima"], format_ok=True)
        RewardComponents(em=1.0, f1=1.0, sub_em=1.0, format_ok=True)
        >>> score_answer(None, ["lima"], format_ok=True)
        RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=False)
    """
    if prediction is None:
        return RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=False)
    return RewardComponents(
        em=exact_match(prediction, golden_answers),
        f1=f1_score(prediction, golden_answers),
        sub_em=sub_em(prediction, golden_answers),
        format_ok=bool(format_ok),
    )


RewardFn = Callable[[RewardComponents], float]
"""A reward function: the scores of an answer in, a scalar reward out."""


def em_reward(c: RewardComponents) -> float:
    """The ``em`` preset: exact match, 1.0 or 0.0; the format is ignored."""
    return float(c.em)


def f1_reward(c: RewardComponents) -> float:
    """The ``f1`` preset: token F1; the format is ignored."""
    return float(c.f1)


def sub_em_reward(c: RewardComponents) -> float:
    """The ``sub_em`` preset: substring exact match; the format is ignored."""
    return float(c.sub_em)


def research_reward(c: RewardComponents) -> float:
    """The ``research`` preset (ReSearch): 0 for a bad format, else F1, or 0.1 when F1 is 0.

    Args:
        c: The answer's components.

    Returns:
        The reward.

    Examples:
        >>> research_reward(RewardComponents(em=0.0, f1=0.5, sub_em=0.0, format_ok=True))
        0.5
        >>> research_reward(RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=True))
        0.1
        >>> research_reward(RewardComponents(em=1.0, f1=1.0, sub_em=1.0, format_ok=False))
        0.0
    """
    if not c.format_ok:
        return 0.0
    return float(c.f1) if c.f1 > 0 else 0.1


def searchr1_format_reward(c: RewardComponents) -> float:
    """The ``searchr1_format`` preset: Search-R1 v0.3's format-aware exact-match reward.

    ============== ============ ==============
    answer         valid format invalid format
    ============== ============ ==============
    correct (EM=1) 1.0          0.8
    wrong          0.2          0.0
    ============== ============ ==============

    This is Search-R1's ``compute_score_em`` with ``structure_format_score=0.2`` and the other
    format scores 0; its optional bonus for a golden answer appearing in the retrieved
    passages is not applied.

    Args:
        c: The answer's components.

    Returns:
        The reward.
    """
    if c.em >= 1.0:
        return 1.0 if c.format_ok else 0.8
    return 0.2 if c.format_ok else 0.0


REWARD_PRESETS: dict[str, RewardFn] = {
    "em": em_reward,
    "f1": f1_reward,
    "sub_em": sub_em_reward,
    "research": research_reward,
    "searchr1_format": searchr1_format_reward,
}
"""The reward presets by name; ``em`` is the environment's default."""


def get_reward_fn(name_or_callable: str | RewardFn) -> RewardFn:
    """Return a reward preset by name, or a callable unchanged.

    Args:
        name_or_callable: A key of :data:`REWARD_PRESETS`, or any
            ``RewardComponents -> float`` callable.

    Returns:
        The reward function.

    Raises:
        ValueError: If the name is not a preset.
        TypeError: If the argument is neither a str nor callable.

    Examples:
        >>> get_reward_fn("research") is research_reward
        True
        >>> get_reward_fn("bleu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown reward preset 'bleu'; expected one of: em, f1, sub_em, research, ...
    """
    if isinstance(name_or_callable, str):
        try:
            return REWARD_PRESETS[name_or_callable]
        except KeyError:
            expected = ", ".join(REWARD_PRESETS)
            raise ValueError(
                f"unknown reward preset {name_or_callable!r}; expected one of: {expected}"
            ) from None
    if callable(name_or_callable):
        return name_or_callable
    raise TypeError(
        f"expected a reward preset name or a callable, got {type(name_or_callable).__name__}"
    )
