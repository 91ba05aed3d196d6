"""The two settings blocks every route shares, declared once.

:class:`EnvSettings` holds the ``SearchQA-v0`` arguments that make up an episode's rules (how many
passages, turns, which prompt and reward); :class:`TurnSettings` holds how an agent writes each
turn (token budgets, sampling, forced prefixes). The GRPO trainer's config, the evaluation
suites, the LLM baselines, the TRL route and the SB3 choice env all take their values from these
two classes, and a checkpoint's ``config.json`` is read back into them through the
``GRPOConfig`` it holds (``research_agents.grpo.checkpoint.saved_config``, then
``env_settings()`` / ``turn_settings()``).

An ``EnvSettings`` field left at ``None`` means "the protocol's value", exactly as the env's own
keyword does: ``EnvSettings(protocol="research").resolved().top_k`` is ReSearch's 5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

# Imported at run time, not only for type checking: configs that extend these classes
# (GRPOConfig) resolve their fields' types with typing.get_type_hints for the command line.
from research_env.retrieval.base import Retriever
from research_env.templates import PromptTemplate

__all__ = ["EnvSettings", "InvalidAction", "LastTurn", "TurnSettings", "settings_from"]

LastTurn = Literal["normal", "answer_only", "no_search"]
"""``"normal"``; ``"answer_only"``: the last turn is told to answer and a search there is
invalid; ``"no_search"``: Search-R1's final turn, whose search is not run."""

InvalidAction = Literal["terminate", "correct"]
"""What an action without a closed ``<search>``/``<answer>`` does: end the episode, or get a
corrective observation and go on."""

E = TypeVar("E", bound="EnvSettings")


@dataclass(frozen=True)
class EnvSettings:
    """The rules of an episode: the ``SearchQA-v0`` arguments a comparison must hold fixed."""

    retriever: str | Retriever | None = None
    """Retriever spec (``"bm25"``, ``"remote:http://host:port"``, ...; see
    ``research_env.resolve``) or a retriever object; ``None``: the dataset's default (BM25 over
    the Factbook corpus for the embedded world)."""

    top_k: int | None = None
    """Passages per search (``None``: the protocol's; ``ours``: 5)."""

    max_turns: int | None = None
    """Actions per episode (``None``: the protocol's; ``ours``: 4)."""

    reward: str | None = None
    """Reward preset of the env (``None``: the protocol's; ``ours``: ``"em"``)."""

    template: str | PromptTemplate | None = None
    """Prompt template name or object (``None``: the protocol's; ``ours``:
    ``"research_instruct"``)."""

    last_turn: LastTurn | None = None
    """What the last turn allows (``None``: the protocol's; ``ours``: ``"normal"``)."""

    protocol: str = "ours"
    """Env protocol (``research_env.protocols``): ``ours``, ``research``, ``searchr1`` ..."""

    invalid_action: InvalidAction | None = None
    """What an invalid action does (``None``: the protocol's; ``ours``: ``"terminate"``)."""

    max_query_chars: int = 512
    """Queries are cut to this many characters."""

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SearchQAEnv`` / ``SearchQAVectorEnv`` (``None`` passes on).

        Only :class:`EnvSettings`'s own fields, also on a config that extends it.
        """
        # Not dataclasses.asdict: it would deep-copy a retriever object (a whole index).
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EnvSettings)}

    def resolved(self: E) -> E:
        """The same settings with every ``None`` replaced by the protocol's value.

        The retriever stays as given (``None`` names the dataset's default, which needs the
        dataset to resolve). A config that extends this class gets a copy of its own type.

        >>> EnvSettings(protocol="research", max_turns=8).resolved().top_k
        5
        """
        from research_env.protocols import get_protocol

        proto = get_protocol(self.protocol)
        return dataclasses.replace(
            self,
            top_k=proto.top_k if self.top_k is None else self.top_k,
            max_turns=proto.max_turns if self.max_turns is None else self.max_turns,
            reward=proto.reward if self.reward is None else self.reward,
            template=proto.template if self.template is None else self.template,
            last_turn=proto.last_turn if self.last_turn is None else self.last_turn,
            invalid_action=(
                proto.invalid_action if self.invalid_action is None else self.invalid_action
            ),
        )


@dataclass(frozen=True)
class TurnSettings:
    """How an agent writes each turn of an episode: budgets, sampling and forced prefixes."""

    max_new_tokens: int = 64
    """Token budget of one turn."""

    max_response_tokens: int = 512
    """Token budget of a whole episode's response (forced, sampled and observation ids)."""

    temperature: float = 0.0
    """Sampling temperature; 0 is greedy decoding (evaluation)."""

    top_p: float = 1.0
    """Nucleus sampling mass (when sampling)."""

    response_prefix: str = ""
    """Text forced at the start of the response (e.g. ``"<search>"``), never trained on."""

    turn_prefix: str = ""
    """Text forced at the start of each later turn (e.g. ``"<"``)."""

    final_prefix: str = ""
    """Text forced at the start of the last allowed turn (e.g. ``"<answer>\\boxed{"``);
    overrides ``turn_prefix`` there."""

    answer_continuation: str = ""
    """Text forced right after the policy opens an answer itself (writes ``<answer>`` on a turn
    whose forced prefix does not already go on with this text), e.g. ``"\\boxed{"``. The policy
    still chooses between searching and answering; once it has chosen to answer, the answer's
    format opens as ``final_prefix`` opens it on the last turn. Empty: off."""

    def __post_init__(self) -> None:
        checks = (
            (self.max_new_tokens >= 1, f"max_new_tokens: expected >= 1, got {self.max_new_tokens}"),
            (
                self.max_response_tokens >= 1,
                f"max_response_tokens: expected >= 1, got {self.max_response_tokens}",
            ),
            (self.temperature >= 0, f"temperature: expected >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p: expected in (0, 1], got {self.top_p}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{type(self).__name__}.{message}")


S = TypeVar("S", EnvSettings, TurnSettings)


def settings_from(cls: type[S], source: Any, **overrides: Any) -> S:
    """Build ``cls`` from the same-named fields of ``source`` (an object or a mapping).

    This is how a config that holds the settings by name (``GRPOConfig``, a checkpoint's
    ``config.json``) hands them on; a field ``source`` lacks keeps its default.

    Args:
        cls: :class:`EnvSettings` or :class:`TurnSettings`.
        source: An object with attributes, or a mapping, holding some of ``cls``'s fields.
        **overrides: Fields to set on top.

    Returns:
        The settings.

    >>> settings_from(TurnSettings, {"max_new_tokens": 32, "lr": 1e-4}).max_new_tokens
    32
    """
    names = [f.name for f in dataclasses.fields(cls)]
    if isinstance(source, Mapping):
        values = {n: source[n] for n in names if n in source}
    else:
        values = {n: getattr(source, n) for n in names if hasattr(source, n)}
    return cls(**(values | overrides))
