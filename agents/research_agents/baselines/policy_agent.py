"""A token-level ReSearch policy as an :class:`~research_env.agent.Agent`.

This is the ``research`` row of the leaderboard: the model plays the env's own ReSearch prompt
and decides for itself when to search and when to answer. Zero-shot it measures prompting alone;
given a GRPO checkpoint it replays :meth:`GRPOTrainer.evaluate
<research_agents.grpo.trainer.GRPOTrainer.evaluate>` through the common Agent protocol.

Each slot keeps a :class:`~research_agents.grpo.rollout.Trajectory` built exactly as
:func:`research_agents.grpo.rollout.rollout` builds it, by the same
:class:`~research_agents.grpo.turns.TurnStepper`:

- the prompt ids are the env's rendered prompt encoded once (``add_special_tokens=False``);
- each turn starts with a forced prefix (``response_prefix`` on the first turn,
  ``final_prefix`` on the last turn the env allows when set, else ``turn_prefix``), mask 0;
- the generator continues the slot's exact ids (prompt + everything since) and stops on the
  template's stop strings; the sampled ids are kept as sampled, cut to the episode's remaining
  budget, and the action sent to the env is ``prefix + decode(ids)``;
- with ``answer_continuation`` set, a turn the policy opened as an answer itself (``<answer>``)
  gets the continuation forced after the tag (:meth:`TurnStepper.open_answer
  <research_agents.grpo.turns.TurnStepper.open_answer>`) and is sampled on in one more
  ``generate`` call (the rollout samples it in its next round);
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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from research_agents.generation.base import Generator
from research_agents.grpo.rollout import Trajectory
from research_agents.grpo.turns import TurnStepper
from research_env.agent import Observation
from research_env.settings import TurnSettings

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
        turns: Token budgets, sampling and forced prefixes (default: greedy, no prefixes).
        seed: Seed of the first generate call (later calls: ``seed + n``); ``None`` continues
            the generator's own stream.
        name: The name in result tables.
    """

    def __init__(
        self,
        generator: Generator,
        tokenizer: PreTrainedTokenizerBase,
        env: SearchQAEnv,
        *,
        turns: TurnSettings | None = None,
        seed: int | None = 0,
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
        self.turns = turns if turns is not None else TurnSettings()
        self.max_turns = env.max_turns
        self.eos_suffix = env.eos_suffix
        self.seed = seed
        self.stepper = TurnStepper(tokenizer, self.turns, env.stop_strings)
        self.generate_calls = 0
        self._trajs: dict[int, Trajectory] = {}
        self._exhausted: dict[int, bool] = {}

    # ------------------------------------------------------------------ protocol
    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        """Start the slot's token sequence from the env's rendered prompt."""
        self._trajs[slot] = Trajectory(
            prompt_ids=self.stepper.encode(observation["prompt"]),
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
            if traj.turns > 0:
                self.stepper.observe(traj, obs["observation"])
            prefix, budget = self.stepper.open(traj, self.max_turns)
            if budget <= 0:  # the rollout would stop here; the env needs an action: invalid
                self._exhausted[slot] = traj.truncated = True
                traj.turns += 1
                actions[slot] = ""
                continue
            prefixes[slot], budgets[slot] = prefix, budget
        live = list(budgets)
        while live:  # a second round only for turns the policy opened as an answer
            params = self.stepper.sampling(
                (budgets[s] for s in live), self.seed, self.generate_calls
            )
            gens = self.generator.generate([self._trajs[s].ids for s in live], params)
            self.generate_calls += 1
            again: list[int] = []
            for slot, gen in zip(live, gens):
                traj = self._trajs[slot]
                text = self.stepper.open_answer(traj, prefixes[slot], gen, budgets[slot])
                if text is None:
                    actions[slot] = self.stepper.take(
                        traj, prefixes[slot], gen, budgets[slot], self.eos_suffix
                    )
                    continue
                prefixes[slot], budgets[slot] = text, self.stepper.budget(traj)
                if budgets[slot] > 0:
                    again.append(slot)
                else:  # the forced text spent the budget: the turn ends as it stands
                    self._exhausted[slot] = traj.truncated = True
                    traj.turns += 1
                    actions[slot] = text
            live = again
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
        t, n = self._trajs[slot], self.turns.max_response_tokens
        return dataclasses.replace(
            t,
            prompt_ids=list(t.prompt_ids),
            response_ids=t.response_ids[:n],
            loss_mask=t.loss_mask[:n],
            old_logprobs=t.old_logprobs[:n],
            info={},
        )
