"""The generator contract shared by the transformers reference and the vLLM backend.

Generators work on token ids, never on text: the rollout hands them the exact ids of the context
and keeps the ids they return, so what the policy is trained on is what it sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one continuation per prompt."""

    max_new_tokens: int = 128
    """Most tokens generated for one prompt (the per-turn budget)."""

    temperature: float = 1.0
    """Softmax temperature; ``0`` means greedy decoding."""

    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; ``1`` disables it."""

    top_k: int = 0
    """Sample among the ``top_k`` most likely tokens; ``0`` disables it."""

    stop: tuple[str, ...] = ()
    """Stop once the generated text contains one of these; the stop text is kept."""

    seed: int | None = None
    """Seed of the sampler for this call (``None``: continue the generator's own stream)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: expected >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k: expected >= 0, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        """Whether decoding is greedy (``temperature == 0``)."""
        return self.temperature == 0


@dataclass
class Generation:
    """One sampled continuation."""

    token_ids: list[int]
    """The generated ids, exactly as sampled (an EOS id is kept when it ended the text)."""

    logprobs: list[float]
    """``log p(token)`` under the sampling distribution (logits / temperature, before top-p /
    top-k truncation; plain logits when greedy), one per id."""

    finish_reason: FinishReason
    """``"stop"`` (a stop string), ``"eos"`` or ``"length"`` (``max_new_tokens`` reached)."""

    stop_string: str | None = None
    """The stop string that ended generation, if any."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific details."""


@runtime_checkable
class Generator(Protocol):
    """Samples continuations of token-id prompts."""

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """Return one :class:`Generation` per prompt, in order."""
        ...

    def sync_weights(self, model: Any) -> None:
        """Make the next generations use ``model``'s current weights (after an update)."""
        ...
