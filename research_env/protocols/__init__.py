r"""Protocols: everything a paper's code fixes about an episode, selected by one name.

A protocol names the stop strings, how retrieved passages are rendered, the format check, how
the answer is extracted, the normaliser, the reward and the limits. ``gym.make("SearchQA-v0",
protocol=...)`` selects one; any individual keyword (``top_k=``, ``reward=`` ...) still
overrides its field. :func:`score_response` scores a whole response as that protocol's reward
code does, and :func:`trl_reward` wraps it as a TRL reward function.

================ =====================================================================
``ours``         research-env's own rules (the default): a block parser for actions and
                 format, ``Doc i (Title: t) text`` passages with tags defused, EM reward.
``research``     ReSearch (Agent-RL/ReCall @ 3b2fd14): see :mod:`.research`.
``searchr1``     Search-R1 (PeterGriffinJin/Search-R1): see :mod:`.searchr1`.
``searchr1_format`` Search-R1 v0.3: the same turns, its format-aware reward.
================ =====================================================================

Every way ``ours`` differs from each paper, and every remaining difference of the paper
protocols from the papers' code, is a row of ``docs/fidelity.md``.

Prompts: we do not ship other projects' prompt sentences. ``research`` and ``searchr1`` use
our paraphrases by default; load the paper's exact prompt from your own checkout with
:func:`research_env.prompt_files.load_template_constants` or ``PromptTemplate.from_file``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from research_env.protocols import research, searchr1
from research_env.rewards import RewardComponents

__all__ = [
    "PROTOCOLS",
    "SearchProtocol",
    "get_protocol",
    "paper_components",
    "score_response",
    "trl_reward",
]

Rules = Literal["ours", "research", "searchr1"]


@dataclass(frozen=True)
class SearchProtocol:
    """The settings one protocol fixes.

    Attributes:
        name: The protocol's name.
        rules: Which turn, observation and reward rules apply (``"ours"``, ``"research"``,
            ``"searchr1"``).
        template: The prompt template (our paraphrase of the paper's prompt).
        top_k: Passages per search.
        max_turns: Most actions per episode.
        reward: The reward preset name (used by ``ours``; the paper protocols score the
            whole response with their own rules).
        invalid_action: What an invalid action does: ``"terminate"`` or ``"correct"``.
        last_turn: ``"normal"``, ``"answer_only"`` (told to answer; a search is invalid) or
            ``"no_search"`` (Search-R1's final turn: a search is not executed and the
            episode ends).
        stop_strings: The strings generation stops at (kept in the output), EOS aside.
        ends_at_eos: Whether a segment that ends with the EOS text ends the episode (and
            whether a response must end with EOS to score).
        source: Where the rules come from (repository @ commit), for fingerprints and docs.
    """

    name: str
    rules: Rules
    template: str
    top_k: int
    max_turns: int
    reward: str
    invalid_action: Literal["terminate", "correct"]
    last_turn: Literal["normal", "answer_only", "no_search"]
    stop_strings: tuple[str, ...]
    ends_at_eos: bool
    source: str


PROTOCOLS: dict[str, SearchProtocol] = {
    "ours": SearchProtocol(
        name="ours",
        rules="ours",
        template="research_instruct",
        top_k=5,
        max_turns=4,
        reward="em",
        invalid_action="terminate",
        last_turn="normal",
        stop_strings=("</search>", "</answer>"),
        ends_at_eos=False,
        source="research-env",
    ),
    "research": SearchProtocol(
        name="research",
        rules="research",
        template="research_instruct",
        top_k=5,
        # ReSearch has no turn limit, only its 8192-token response budget; with 5 passages per
        # search that budget is spent long before 64 turns. The cap only bounds runaway agents.
        max_turns=64,
        reward="research",
        invalid_action="terminate",
        last_turn="normal",
        stop_strings=("</search>",),
        ends_at_eos=True,
        source="Agent-RL/ReCall@3b2fd14",
    ),
    "searchr1": SearchProtocol(
        name="searchr1",
        rules="searchr1",
        template="searchr1",
        top_k=3,
        # max_turns=2 search turns in their scripts, plus the final turn without search.
        max_turns=3,
        reward="em",
        invalid_action="correct",
        last_turn="no_search",
        stop_strings=("</search>", "</answer>"),
        ends_at_eos=False,
        source="PeterGriffinJin/Search-R1",
    ),
}
PROTOCOLS["searchr1_format"] = dataclasses.replace(
    PROTOCOLS["searchr1"],
    name="searchr1_format",
    max_turns=5,  # v0.3 scripts: max_turns=4, plus the final turn without search
    reward="searchr1_format",
    source="PeterGriffinJin/Search-R1 v0.3",
)
"""The built-in protocols by name; ``ours`` is the environment's default."""


def get_protocol(name: str | SearchProtocol) -> SearchProtocol:
    """Return a protocol by name (a :class:`SearchProtocol` is returned unchanged).

    Raises:
        ValueError: If the name is unknown.

    Examples:
        >>> get_protocol("research").stop_strings
        ('</search>',)
    """
    if isinstance(name, SearchProtocol):
        return name
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown protocol {name!r}; expected one of: {', '.join(PROTOCOLS)}"
        ) from None


def paper_components(
    prediction: str | None, golden_answers: Sequence[str], format_ok: bool
) -> RewardComponents:
    """EM, F1 and sub-EM as the papers' code computes them.

    SQuAD normalisation with no Unicode folding; sub-EM is FlashRAG's character-substring
    "acc".

    Examples:
        >>> paper_components("Lima, Peru", ["lima"], True)
        RewardComponents(em=0.0, f1=0.6666666666666666, sub_em=1.0, format_ok=True)
    """
    if prediction is None:
        return RewardComponents(em=0.0, f1=0.0, sub_em=0.0, format_ok=False)
    pred = research.normalize(prediction)
    golds = [research.normalize(g) for g in golden_answers]
    return RewardComponents(
        em=float(any(g == pred for g in golds)),
        f1=research.f1(prediction, golden_answers),
        sub_em=float(any(g in pred for g in golds)),
        format_ok=bool(format_ok),
    )


def _ours_score(response: str, golden_answers: Sequence[str], reward: str) -> float:
    # Imported here: rewards/actions/format_check import nothing from protocols.
    from research_env.actions import Answer, parse_action
    from research_env.format_check import check_research_format
    from research_env.rewards import get_reward_fn, score_answer

    tail = response.rsplit("</result>", 1)[-1]
    parsed = parse_action(tail)
    if not isinstance(parsed, Answer):
        return 0.0
    ok, _ = check_research_format(response)
    return float(get_reward_fn(reward)(score_answer(parsed.text, golden_answers, ok)))


def score_response(
    protocol: str | SearchProtocol,
    response: str,
    golden_answers: str | Sequence[str],
    *,
    eos: bool,
    eos_text: str = "<|im_end|>",
    prompt: str | None = None,
) -> float:
    r"""Score a whole response exactly as ``protocol``'s reward code does.

    Args:
        protocol: A protocol name or object.
        response: Everything generated after the prompt with the inserted observation
            blocks, the EOS text removed.
        golden_answers: The accepted answers.
        eos: Whether generation ended at the EOS token (``research`` scores 0 otherwise).
        eos_text: The tokenizer's EOS text (``research`` only).
        prompt: The decoded prompt, where the rules look at it (``research``: which marker
            starts the response; ``searchr1``: the prompt's own ``<answer>`` example).
            ``None``: an instruct prompt with one example answer.

    Returns:
        The reward.

    Examples:
        >>> r = ("<think> Peru's capital. </think><search> Peru </search> <result>\n"
        ...      '"Peru"\nLima is the capital.\n</result><think> Lima. </think>'
        ...      "<answer> \\boxed{Lima} </answer>")
        >>> score_response("research", r, ["Lima"], eos=True)
        1.0
        >>> score_response("research", r, ["Lima"], eos=False)  # over length
        0.0
    """
    proto = get_protocol(protocol)
    golds = [golden_answers] if isinstance(golden_answers, str) else list(golden_answers)
    if proto.rules == "research":
        value, _reason = research.score(response, golds, eos=eos, eos_text=eos_text, prompt=prompt)
        return value
    if proto.rules == "searchr1":
        if proto.reward == "searchr1_format":
            return searchr1.score_format(response, golds, prompt=prompt)
        return searchr1.score(response, golds, prompt=prompt)
    return _ours_score(response, golds, proto.reward)


def trl_reward(
    protocol: str | SearchProtocol,
    *,
    eos_text: str = "<|im_end|>",
    answers_column: str = "golden_answers",
) -> Callable[..., list[float]]:
    """A TRL-style reward function ``f(prompts, completions, **columns) -> list[float]``.

    A completion "ended at EOS" when it ends with ``eos_text`` (decode with special tokens
    kept), or when an ``eos`` column says so; the EOS text is removed before scoring.

    Args:
        protocol: A protocol name or object.
        eos_text: The tokenizer's EOS text.
        answers_column: The dataset column holding each row's golden answers.

    Returns:
        The reward function.
    """
    proto = get_protocol(protocol)

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        answers = columns[answers_column]
        eos_flags = columns.get("eos")
        out = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            ended = text.endswith(eos_text) if eos_text else False
            if ended:
                text = text[: len(text) - len(eos_text)]
            if eos_flags is not None:
                ended = bool(eos_flags[i])
            prompt_text = prompt if isinstance(prompt, str) else None
            out.append(
                score_response(
                    proto, text, answers[i], eos=ended, eos_text=eos_text, prompt=prompt_text
                )
            )
        return out

    reward.__name__ = f"{proto.name}_reward"
    return reward
