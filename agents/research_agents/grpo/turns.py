"""One turn of a token-level episode: the rules the GRPO rollout and the policy agent share.

:func:`research_agents.grpo.rollout.rollout` (training and :func:`evaluate_policy`) and
:class:`research_agents.baselines.policy_agent.ResearchPolicyAgent` (the ``research`` agent of the
evaluation harness) play turns the same way, because they call this class for each step of a
turn:

1. :meth:`TurnStepper.open` forces the turn's prefix (``response_prefix`` on the first turn,
   ``final_prefix`` on the last turn the env allows when set, else ``turn_prefix``; loss mask 0)
   and returns what is left of the episode's token budget;
2. :meth:`TurnStepper.sampling` gives the one ``generate`` call's parameters for all rows of a
   round (``max_new_tokens`` lowered to the largest remaining budget; seeded ``seed + calls``);
3. :meth:`TurnStepper.take` keeps the sampled ids as sampled (cut to the row's budget, mask 1,
   their log-probs) and returns the action text ``prefix + decode(ids)``; at EOS it appends the
   protocol's ``eos_suffix`` (a paper protocol ends the episode there);
   Before :meth:`~TurnStepper.take`, :meth:`TurnStepper.open_answer` handles
   ``answer_continuation``: when the policy itself opened an answer (``<answer>``) and did not
   go on with the continuation, the ids up to the tag are kept, the continuation is forced
   (mask 0), and the caller samples the rest of the turn in one more ``generate`` call;
4. :meth:`TurnStepper.observe` appends the env's observation, encoded once (mask 0).

Token ids are never re-tokenised: what the model sampled is what the loss sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from research_agents.generation.base import Generation, SamplingParams
from research_env.actions import ANSWER_OPEN
from research_env.settings import TurnSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_agents.grpo.rollout import Trajectory

__all__ = ["TurnStepper"]


class TurnStepper:
    """Builds a trajectory's ids turn by turn under one :class:`TurnSettings`.

    Args:
        tokenizer: The policy's tokenizer (prefixes and observations are encoded with it).
        turns: Budgets, sampling and forced prefixes.
        stop: The env template's stop strings.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, turns: TurnSettings, stop: Sequence[str]
    ) -> None:
        self.tokenizer = tokenizer
        self.turns = turns
        self.stop = tuple(stop)
        self._prefix_cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        """``text``'s ids without special tokens (``[]`` for ``""``)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def prefix(self, turn: int, max_turns: int) -> str:
        """The forced text of turn ``turn`` (0-based) of an episode of ``max_turns``."""
        if turn == 0:
            return self.turns.response_prefix
        if self.turns.final_prefix and turn == max_turns - 1:
            return self.turns.final_prefix
        return self.turns.turn_prefix

    def open(self, traj: Trajectory, max_turns: int) -> tuple[str, int]:
        """Force the next turn's prefix into ``traj``; return it and the tokens left.

        A budget of 0 or less means the episode has spent ``max_response_tokens``.
        """
        text = self.prefix(traj.turns, max_turns)
        extend(traj, self._ids(text), None)
        return text, self.budget(traj)

    def budget(self, traj: Trajectory) -> int:
        """The tokens left of ``traj``'s episode budget (0 or less: spent)."""
        return self.turns.max_response_tokens - len(traj.response_ids)

    def sampling(
        self, budgets: Iterable[int], seed: int | None, calls: int, top_k: int = 0
    ) -> SamplingParams:
        """Parameters of one ``generate`` call for rows with these remaining ``budgets``.

        Args:
            budgets: Tokens left of each row's episode (all positive).
            seed: The first call's seed (``None``: the generator's own stream).
            calls: ``generate`` calls made so far (call ``n`` is seeded ``seed + n``).
            top_k: Top-k sampling (0: off).
        """
        return SamplingParams(
            max_new_tokens=max(1, min(self.turns.max_new_tokens, max(budgets))),
            temperature=self.turns.temperature,
            top_p=self.turns.top_p,
            top_k=top_k,
            stop=self.stop,
            seed=None if seed is None else seed + calls,
        )

    def open_answer(
        self, traj: Trajectory, prefix: str, gen: Generation, budget: int
    ) -> str | None:
        r"""Force ``answer_continuation`` into a turn the policy opened as an answer itself.

        When the turn's text (``prefix`` and the sampled ids) starts with ``<answer>`` and does
        not go on with the continuation, the sampled ids that still agree with the ids of
        ``<answer>`` + continuation encoded as one string (what ``final_prefix`` forces) are
        kept (their log-probs too, mask 1), the rest of those ids is forced (mask 0), and the
        sampled text after them is dropped. So the ids read as on the last turn: SmolLM2 spells
        ``<answer>\boxed{`` with one ``>\`` token, which a ``>`` sampled before a forced
        ``\boxed{`` would not be. Where the forced prefix's ids do not start those ids, the
        sampled ids that spell a prefix of ``<answer>`` are kept and the rest of the text is
        forced.

        Args:
            traj: The episode; it gets the kept and the forced ids.
            prefix: The turn's text before ``gen`` (its forced prefix, or the text so far).
            gen: What the policy sampled.
            budget: The tokens left of the episode's budget.

        Returns:
            The turn's text so far (the ``prefix`` of the next :meth:`take`, whose ``generate``
            call continues the turn), or ``None`` when nothing was forced: call :meth:`take`.
        """
        continuation = self.turns.answer_continuation
        if not continuation:
            return None
        ids = gen.token_ids[:budget]
        text = prefix + self.decode(ids)
        body = text.lstrip()
        if not body.startswith(ANSWER_OPEN):
            return None
        if body[len(ANSWER_OPEN) :].lstrip().startswith(continuation.strip() or continuation):
            return None  # the policy wrote the continuation itself
        opened = self._ids(ANSWER_OPEN + continuation)
        start = self._ids(prefix)
        keep = 0
        if opened[: len(start)] == start:
            while (
                keep < len(ids)
                and len(start) + keep < len(opened)
                and ids[keep] == opened[len(start) + keep]
            ):
                keep += 1
            extend(traj, ids[:keep], gen.logprobs[:keep])
            extend(traj, opened[len(start) + keep :], None)
            return ANSWER_OPEN + continuation
        while keep < len(ids) and ANSWER_OPEN.startswith(
            (prefix + self.decode(ids[: keep + 1])).lstrip()
        ):
            keep += 1
        kept = prefix + self.decode(ids[:keep])
        forced = ANSWER_OPEN[len(kept.lstrip()) :] + continuation
        extend(traj, ids[:keep], gen.logprobs[:keep])
        extend(traj, self.encode(forced), None)
        return kept + forced

    def _ids(self, text: str) -> list[int]:
        """``text``'s ids, encoded once per stepper (the forced prefixes)."""
        if text not in self._prefix_cache:
            self._prefix_cache[text] = self.encode(text)
        return self._prefix_cache[text]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of sampled ids (special tokens skipped, as actions are read)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)) if ids else ""

    def take(
        self, traj: Trajectory, prefix: str, gen: Generation, budget: int, eos_suffix: str
    ) -> str:
        """Append the sampled ids (cut to ``budget``) and return the turn's action text."""
        ids = gen.token_ids[:budget]
        extend(traj, ids, gen.logprobs[:budget])
        traj.turns += 1
        text = self.decode(ids)
        if eos_suffix and ids and ids[-1] == self.tokenizer.eos_token_id:
            text += eos_suffix  # the protocol ends the episode at EOS
        return prefix + text

    def observe(self, traj: Trajectory, observation: str) -> None:
        """Append an observation's ids (mask 0); nothing for an empty one."""
        if observation:
            extend(traj, self.encode(observation), None)


def extend(traj: Trajectory, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
    """Append ``ids`` to ``traj``: sampled (with ``logprobs``, mask 1) or forced (mask 0)."""
    traj.response_ids.extend(ids)
    traj.loss_mask.extend([0 if logprobs is None else 1] * len(ids))
    traj.old_logprobs.extend([0.0] * len(ids) if logprobs is None else logprobs)
