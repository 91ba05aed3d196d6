"""A token-level ReSearch policy as an :class:`~research_env.agent.Agent`.

This is the ``research`` row of the leaderboard: the model plays the env's own ReSearch prompt
and decides for itself when to search and when to answer. Zero-shot it measures prompting alone;
given a GRPO checkpoint it replays :meth:`GRPOTrainer.evaluate
<research_agents.grpo.trainer.GRPOTrainer.evaluate>` through the common Agent protocol.

Each slot keeps a :class:`~research_agents.grpo.rollout.Trajectory` built exactly as
:func:`research_agents.grpo.rollout.rollout` builds it:

- the prompt ids are the env's rendered prompt encoded once (``add_special_tokens=False``);
- each turn starts with a forced prefix (``response_prefix`` on the first turn,
  ``final_prefix`` on the last turn the env allows when set, else ``turn_prefix``), mask 0;
- the generator continues the slot's exact ids (prompt + everything since) and stops on the
  template's stop strings; the sampled ids are kept as sampled, cut to the episode's remaining
  budget, and the action sent to the env is ``prefix + decode(ids)``;
- each non-empty observation is encoded once and appended, mask 0;
- ``max_new_tokens`` caps a turn and ``max_response_tokens`` the whole response (forced,
  sampled and observed ids). One ``generate`` call serves every slot of a round, with
  ``max_new_tokens`` lowered to the largest remaining budget, as the rollout does.

So with greedy decoding and the same settings, :func:`research_env.agent.play` with this agent
gives the predictions, scores and generated ids of
:func:`research_agents.grpo.evaluation.evaluate_policy` (``tests/test_llm_baselines.py`` checks
it). One difference is forced by the protocol: the rollout stops an episode whose budget is spent
without stepping the env (end reason ``token_budget``), while an Agent must return an action, so
this agent sends an empty action, which the env rejects as invalid (``no_action_tag``). The
prediction (none) and the scores (0) are the same; ``episode_stats`` reports
``budget_exhausted = 1``.

With ``temperature > 0`` each generate call is seeded with ``seed + calls so far``; results are
then reproducible for a fixed env and question order, but depend on how episodes are batched.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from research_agents.generation.base import Generator, SamplingParams
from research_agents.grpo.rollout import Trajectory
from research_env.agent import Observation

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_env.env import SearchQAEnv

__all__ = ["ResearchPolicyAgent"]


class ResearchPolicyAgent:
    """Play SearchQA-v0 token by token with a causal LM, as the GRPO rollout does.

    Args:
        generator: Samples the turns (e.g. :class:`~research_agents.generation.hf.HFGenerator`).
        tokenizer: The model's tokenizer (prompts and observations are encoded with it).
        env: An env with the settings the agent will play (its ``max_turns`` decides the last
            turn; its template gives the stop strings).
        max_new_tokens: Tokens per turn.
        max_response_tokens: Tokens per episode response (forced, sampled and observed).
        temperature: Sampling temperature; ``0`` is greedy.
        top_p: Nucleus mass when sampling.
        seed: Seed of the first generate call (later calls: ``seed + n``); ``None`` continues
            the generator's own stream.
        response_prefix: Text forced at the start of the first turn.
        turn_prefix: Text forced at the start of every later turn.
        final_prefix: Text forced at the start of the last turn the env allows (overrides
            ``turn_prefix`` there; empty: none).
        name: The name in result tables.
    """

    def __init__(
        self,
        generator: Generator,
        tokenizer: PreTrainedTokenizerBase,
        env: SearchQAEnv,
        *,
        max_new_tokens: int = 32,
        max_response_tokens: int = 400,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = 0,
        response_prefix: str = "",
        turn_prefix: str = "",
        final_prefix: str = "",
        name: str = "research",
    ) -> None:
        if env.template.use_chat_template and env.tokenizer is None:
            warnings.warn(
                f"the env's template {env.template.name!r} expects a chat template but the env "
                "has no tokenizer, so its prompt is plain text; build the env with "
                "tokenizer=<the model's tokenizer> to play the prompt the model was trained on",
                stacklevel=2,
            )
        self.name = name
        self.generator = generator
        self.tokenizer = tokenizer
        self.max_turns = env.max_turns
        self.stop: tuple[str, ...] = tuple(env.stop_strings)
        self.eos_suffix = env.eos_suffix
        self.max_new_tokens = max_new_tokens
        self.max_response_tokens = max_response_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.response_prefix = response_prefix
        self.turn_prefix = turn_prefix
        self.final_prefix = final_prefix
        self.generate_calls = 0
        self._trajs: dict[int, Trajectory] = {}
        self._exhausted: dict[int, bool] = {}
        self._prefix_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ helpers
    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def _prefix_ids(self, text: str) -> list[int]:
        if text not in self._prefix_cache:
            self._prefix_cache[text] = self._encode(text)
        return self._prefix_cache[text]

    def _prefix(self, turns: int) -> str:
        """The forced text of turn ``turns`` (0-based), as the rollout chooses it."""
        if turns == 0:
            return self.response_prefix
        if self.final_prefix and turns == self.max_turns - 1:
            return self.final_prefix
        return self.turn_prefix

    @staticmethod
    def _extend(traj: Trajectory, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
        traj.response_ids.extend(ids)
        traj.loss_mask.extend([0 if logprobs is None else 1] * len(ids))
        traj.old_logprobs.extend([0.0] * len(ids) if logprobs is None else logprobs)

    # ------------------------------------------------------------------ protocol
    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        """Start the slot's token sequence from the env's rendered prompt."""
        self._trajs[slot] = Trajectory(
            prompt_ids=self._encode(observation["prompt"]),
            question_index=int(info.get("index", 0)),
        )
        self._exhausted[slot] = False

    def act(self, observations: Mapping[int, Observation]) -> dict[int, str]:
        """Append each slot's observation and prefix, then sample every slot's turn at once."""
        actions: dict[int, str] = {}
        prefixes: dict[int, str] = {}
        budgets: dict[int, int] = {}
        for slot, obs in observations.items():
            traj = self._trajs[slot]
            if traj.turns > 0 and obs["observation"]:
                self._extend(traj, self._encode(obs["observation"]), None)
            prefix = self._prefix(traj.turns)
            self._extend(traj, self._prefix_ids(prefix), None)
            budget = self.max_response_tokens - len(traj.response_ids)
            if budget <= 0:  # the rollout would stop here; the env needs an action: invalid
                self._exhausted[slot] = traj.truncated = True
                traj.turns += 1
                actions[slot] = ""
                continue
            prefixes[slot], budgets[slot] = prefix, budget
        live = list(budgets)
        if live:
            params = SamplingParams(
                max_new_tokens=max(1, min(self.max_new_tokens, max(budgets.values()))),
                temperature=self.temperature,
                top_p=self.top_p,
                stop=self.stop,
                seed=None if self.seed is None else self.seed + self.generate_calls,
            )
            gens = self.generator.generate([self._trajs[s].ids for s in live], params)
            self.generate_calls += 1
            for slot, gen in zip(live, gens):
                traj = self._trajs[slot]
                ids = gen.token_ids[: budgets[slot]]
                self._extend(traj, ids, gen.logprobs[: budgets[slot]])
                traj.turns += 1
                text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
                if self.eos_suffix and ids and ids[-1] == self.tokenizer.eos_token_id:
                    text += self.eos_suffix  # the protocol ends the episode at EOS
                actions[slot] = prefixes[slot] + text
        return {slot: actions[slot] for slot in observations}

    def episode_stats(self, slot: int) -> dict[str, float]:
        """``generated_tokens`` (sampled ids), ``response_tokens`` and ``budget_exhausted``."""
        traj = self._trajs[slot]
        return {
            "generated_tokens": float(traj.num_generated),
            "response_tokens": float(len(traj.response_ids)),
            "budget_exhausted": float(self._exhausted[slot]),
        }

    def trajectory(self, slot: int) -> Trajectory:
        """The slot's current (or last) episode as token ids, masks and sampling log-probs.

        A copy cut to ``max_response_tokens`` (an observation can overflow the budget), as
        :func:`~research_agents.grpo.rollout.rollout` returns it; ``reward`` and ``info`` are
        left empty (they are in the episode's record).

        Raises:
            KeyError: If no episode has started in ``slot``.
        """
        t, n = self._trajs[slot], self.max_response_tokens
        return dataclasses.replace(
            t,
            prompt_ids=list(t.prompt_ids),
            response_ids=t.response_ids[:n],
            loss_mask=t.loss_mask[:n],
            old_logprobs=t.old_logprobs[:n],
            info={},
        )
