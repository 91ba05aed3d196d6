"""SearchQA-v0 as a verifiers environment (``pip install 'research-env[verifiers]'``).

verifiers 0.4 (``verifiers.v1``) builds an environment from a *taskset* (the tasks and how each
is scored) and a *harness* (the program that plays a task, every model call going through
verifiers' interception server, which records the trace). This module is such a plugin, in
the layout verifiers resolves by id: it exports one ``Taskset``, one ``Task`` and one
``Harness`` subclass through ``__all__``, so ``--env.taskset.id
research_agents.engines.verifiers_env`` (or :data:`TASKSET_ID`) finds all three, and
:func:`load_environment` builds the ``vf.Env``.

* :class:`SearchQATaskset`: one task per question of the split its ``env`` arguments name
  (any SearchQA-v0 argument: ``dataset``, ``split``, ``retriever`` — ``"remote:<url>"`` for
  ``searchqa serve`` —, ``protocol``, ``reward``...).
* :class:`SearchQAHarness`: the multi-turn loop, in-process: the env's chat prompt, then for
  each turn one ``/chat/completions`` call (stop strings: the env's), the assistant text
  played through a SearchQA-v0 env, its ``<result>`` block sent back as the next user
  message, until the episode ends. What the env returned is kept in ``trace.info["searchqa"]``.
* :class:`SearchQATask`: the rubric. ``reward`` is the env's own terminal reward (the preset
  or protocol it was configured with); the metrics ``em`` / ``f1`` re-score the extracted
  answer with :func:`research_env.rewards.exact_match` and :func:`~research_env.rewards.f1_score`,
  plus ``format_ok``, ``searches`` and ``turns``.

Token-level training (prime-rl) reads the ids from verifiers' trace; the observation turns are
user messages there, so they are not trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import verifiers.v1 as vf
from pydantic import Field

from research_agents.engines.common import engine_metrics, env_kwargs, question_rows
from research_env.env import SearchQAEnv
from research_env.rewards import exact_match, f1_score

__all__ = [
    "TASKSET_ID",
    "SearchQAHarness",
    "SearchQAHarnessConfig",
    "SearchQATask",
    "SearchQATaskData",
    "SearchQATaskset",
    "SearchQATasksetConfig",
    "load_environment",
]

TASKSET_ID = "searchqa-verifiers"
"""The id verifiers imports the plugin module ``searchqa_verifiers`` by (``--env.taskset.id``)."""


class SearchQATaskData(vf.TaskData):  # type: ignore[misc]  # verifiers ships no py.typed
    """One question, and the env that plays and scores it."""

    question_id: str = ""
    """The question's id in the env's dataset."""

    golden_answers: list[str] = Field(default_factory=list)
    """The accepted answers (the metrics re-score against them)."""

    env_args: dict[str, Any] = Field(default_factory=dict)
    """The SearchQA-v0 arguments of the taskset (the same for every task)."""


class SearchQATasksetConfig(vf.TasksetConfig):  # type: ignore[misc]
    """``--env.taskset.*``: which env's questions to load."""

    env: dict[str, Any] = Field(default_factory=dict)
    """SearchQA-v0 arguments (``dataset``, ``split``, ``retriever``, ``protocol``...)."""


class SearchQATask(vf.Task[SearchQATaskData, vf.State, vf.TaskConfig]):  # type: ignore[misc]
    """Scores a played episode from what the harness recorded in ``trace.info``."""

    @vf.reward  # type: ignore[untyped-decorator]
    async def reward(self, trace: Any) -> float:
        """The env's terminal reward (its configured preset or protocol)."""
        return float(_played(trace)["reward"])

    @vf.metric  # type: ignore[untyped-decorator]
    async def searchqa(self, task: SearchQATaskData, trace: Any) -> dict[str, float]:
        """EM / F1 of the extracted answer under our normaliser, and the episode's numbers."""
        played = _played(trace)
        prediction = played["prediction"]
        out = dict(played["metrics"])
        golds = task.golden_answers
        out["em"] = exact_match(prediction, golds) if prediction is not None else 0.0
        out["f1"] = f1_score(prediction, golds) if prediction is not None else 0.0
        return out


def _played(trace: Any) -> dict[str, Any]:
    played = trace.info.get("searchqa")
    if not isinstance(played, dict):
        raise ValueError(
            "trace.info['searchqa'] is missing: the task was not played by SearchQAHarness "
            f"(harness {trace.agent.harness!r})"
        )
    return played


class SearchQAHarnessConfig(vf.HarnessConfig):  # type: ignore[misc]
    """``--env.agent.harness.*``."""

    id: str = TASKSET_ID
    max_tokens: int = Field(256, ge=1)
    """Tokens the model may generate per turn."""

    request_timeout_s: float = Field(600.0, gt=0)
    """Seconds one model call may take."""


class SearchQAHarness(vf.Harness[SearchQAHarnessConfig]):  # type: ignore[misc]
    """Plays one SearchQA-v0 episode in-process, every model call through ``endpoint``."""

    APPENDS_SYSTEM_PROMPT = True
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: Any,
        trace: Any,
        runtime: Any,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: SearchQATaskData,
        tool_interception_url: str | None = None,
    ) -> Any:
        """Run the episode; return a synthetic ``ProgramResult`` (the trace is the record)."""
        env = SearchQAEnv(**env_kwargs(data.env_args, "taskset.env"))
        obs, _ = env.reset(options={"question_id": data.question_id})
        messages: list[dict[str, str]] = env.template.messages(obs["question"])
        stops = list(env.stop_strings)
        turns, reward = 0, 0.0
        info: dict[str, Any] = {}
        async with httpx.AsyncClient(timeout=self.config.request_timeout_s) as client:
            while True:
                response = await client.post(
                    endpoint.rstrip("/") + "/chat/completions",
                    headers={"Authorization": f"Bearer {secret}"},
                    json={
                        "model": ctx.model,
                        "messages": messages,
                        "stop": stops,
                        "max_tokens": self.config.max_tokens,
                    },
                )
                if response.status_code != 200:
                    return vf.ProgramResult(
                        1,
                        "",
                        f"model call {turns + 1}: HTTP {response.status_code}: "
                        f"{response.text[:500]}",
                    )
                choice = response.json()["choices"][0]
                text = restore_stop(
                    choice["message"].get("content") or "", choice.get("finish_reason"), stops
                )
                messages.append({"role": "assistant", "content": text})
                turns += 1
                obs, reward, terminated, truncated, info = env.step(text)
                if terminated or truncated:
                    break
                messages.append({"role": "user", "content": obs["observation"]})
        env.close()
        trace.info["searchqa"] = {
            "reward": float(reward),
            "prediction": info.get("prediction"),
            "end_reason": info.get("end_reason"),
            "metrics": engine_metrics(info, turns),
        }
        return vf.ProgramResult(0, json.dumps(trace.info["searchqa"]), "")


def restore_stop(text: str, finish_reason: str | None, stops: list[str]) -> str:
    """Put back the stop string a chat server cut off (OpenAI and vLLM drop it by default).

    When generation stopped on a stop string and the text does not end with one, the closing
    tag of the last tag it opened (``<search>`` → ``</search>``) is appended, so the env
    parses the segment as the model meant it.
    """
    if finish_reason != "stop" or any(text.endswith(s) for s in stops):
        return text
    best, where = None, -1
    for stop in stops:
        if stop.startswith("</"):
            opening = "<" + stop[2:]
            i = text.rfind(opening)
            if i > where and text.find(stop, i) < 0:
                best, where = stop, i
    return text + best if best is not None else text


def load_environment(env: Mapping[str, Any] | None = None, max_tokens: int = 256) -> Any:
    """Build the verifiers ``Env`` over SearchQA-v0.

    Args:
        env: SearchQA-v0 arguments (checked by name).
        max_tokens: Tokens per turn.

    Returns:
        A ``verifiers.v1`` ``SingleAgentEnv`` whose one agent plays with :class:`SearchQAHarness`.
    """
    args = env_kwargs(env, "env")
    config = vf.resolve_env_config(
        {
            "taskset": {"id": TASKSET_ID, "env": args},
            "agent": {
                "harness": {"id": TASKSET_ID, "max_tokens": max_tokens},
                # The harness plays in this process; nothing runs in a sandbox.
                "runtime": {"type": "subprocess"},
            },
        }
    )
    return vf.load_environment(config)


class SearchQATaskset(vf.Taskset[SearchQATask, SearchQATasksetConfig]):  # type: ignore[misc]
    """One task per question of the env's split, in order."""

    def load(self) -> Any:
        """Yield the tasks (the env is built once to list its questions)."""
        args = env_kwargs(self.config.env, "env.taskset.env")
        env = SearchQAEnv(**args)
        for row in question_rows(env):
            data = SearchQATaskData(
                id=row.question_id,
                name=row.question_id,
                prompt=row.question,
                question_id=row.question_id,
                golden_answers=row.golden_answers,
                env_args=args,
            )
            yield SearchQATask(data, self.config.task)
        env.close()
