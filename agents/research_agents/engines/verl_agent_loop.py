"""SearchQA-v0's own rollout as a verl agent loop (tag format, token in, token out).

:class:`SearchQAAgentLoop` is a ``verl.experimental.agent_loop.AgentLoopBase``: for each dataset
row, verl's agent-loop worker calls ``run(sampling_params, **row)``. The loop plays one
SearchQA-v0 episode the way ReSearch / Search-R1 roll out — generate until ``</search>`` or
``</answer>`` (the env's stop strings), step the env, append the observation's tokens, generate
again — against verl's inference servers (``server_manager.generate`` on token ids), and hands
verl the prompt ids, the response ids with mask 1 on sampled tokens and 0 on observation
tokens, the sampling log-probs, and the env's terminal reward as ``reward_score``. The protocol
(``protocol="research"`` for ReSearch's rules) and every other env argument come from the agent
loop config::

    # searchqa_agent.yaml  (actor_rollout_ref.rollout.agent.agent_loop_config_path)
    - name: searchqa_agent
      _target_: research_agents.engines.verl_agent_loop.SearchQAAgentLoop
      env: {protocol: research, retriever: "remote:http://127.0.0.1:8000", split: train}

and each row names its question in ``extra_info.question_id`` (``agent_name: searchqa_agent``;
:func:`research_agents.engines.skyrl.dataset_rows` writes such rows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from research_agents.engines.common import engine_metrics, env_kwargs, pick_question
from research_env.env import SearchQAEnv

__all__ = ["AGENT_NAME", "SearchQAAgentLoop"]

AGENT_NAME = "searchqa_agent"
"""The ``agent_name`` the loop is registered under."""


@register(AGENT_NAME)
class SearchQAAgentLoop(AgentLoopBase):  # type: ignore[misc]  # verl ships no py.typed
    """One SearchQA-v0 episode per row on verl's servers (see the module docstring).

    Args:
        *args: verl's ``AgentLoopBase`` arguments (trainer config, server manager, tokenizer...).
        env: SearchQA-v0 arguments (checked by name); the tokenizer is verl's.
        max_tokens_per_turn: Tokens one turn may generate (``None``: what is left of
            ``rollout.response_length``).
        **kwargs: verl's ``AgentLoopBase`` keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        env: Mapping[str, Any] | None = None,
        max_tokens_per_turn: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.env_args = env_kwargs(env, f"agent loop {AGENT_NAME!r} config env")
        self.env_args.pop("tokenizer", None)
        self.response_length = int(self.rollout_config.response_length)
        self.max_tokens_per_turn = max_tokens_per_turn

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        """Play the row's question; return verl's ``AgentLoopOutput``."""
        options = pick_question(kwargs, f"{AGENT_NAME} dataset row")
        env = SearchQAEnv(tokenizer=self.tokenizer, **self.env_args)
        obs, _ = env.reset(options=options)
        prompt_ids = list(self.tokenizer.encode(obs["prompt"], add_special_tokens=False))
        response: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        have_logprobs = True
        reward, turns, observations = 0.0, 0, 0
        info: dict[str, Any] = {}
        request_id = uuid4().hex
        while len(response) < self.response_length:
            budget = self.response_length - len(response)
            if self.max_tokens_per_turn is not None:
                budget = min(budget, self.max_tokens_per_turn)
            params = {
                **sampling_params,
                "stop": list(env.stop_strings),
                "include_stop_str_in_output": True,
                "max_tokens": budget,
            }
            out = await self.server_manager.generate(
                request_id=request_id, prompt_ids=prompt_ids + response, sampling_params=params
            )
            ids = list(out.token_ids)
            response += ids
            mask += [1] * len(ids)
            if out.log_probs:
                logprobs += list(out.log_probs)
            else:
                have_logprobs = False
                logprobs += [0.0] * len(ids)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            obs, reward, terminated, truncated, info = await asyncio.to_thread(env.step, text)
            turns += 1
            if terminated or truncated:
                break
            observation = self.tokenizer.encode(obs["observation"], add_special_tokens=False)
            response += observation
            observations += 1
            mask += [0] * len(observation)
            logprobs += [0.0] * len(observation)
        env.close()
        n = self.response_length
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response[:n],
            response_mask=mask[:n],
            response_logprobs=logprobs[:n] if have_logprobs else None,
            reward_score=float(reward),
            num_turns=1 + turns + observations,  # the user prompt, assistant turns, results
            metrics=AgentLoopMetrics(),
            extra_fields={"searchqa": engine_metrics(info, turns)},
        )
