"""SearchQA-v0 as a SkyRL-Gym environment (``pip install 'research-env[skyrl]'``).

:class:`SearchQASkyRLEnv` is a ``skyrl_gym.envs.base_text_env.BaseTextEnv``: SkyRL's generator
builds one per trajectory with ``skyrl_gym.make(env_class, env_config=..., extras=row)``, calls
``init(prompt)`` for the first chat messages, then ``step(generated_text)`` until ``done``. Each
step plays the text through a SearchQA-v0 env, so parsing, retrieval, observation text and
reward are exactly the env's; the ``<result>`` block comes back as one user message (SkyRL
appends its tokens to the assistant turn unless ``generator.use_conversation_multi_turn``).

* env arguments (given to :func:`register`; an ``env_config`` from SkyRL overrides them):
  any SearchQA-v0 argument — ``dataset``, ``split``, ``retriever``
  (``"remote:http://127.0.0.1:8000"`` for ``searchqa serve``), ``protocol``, ``top_k``,
  ``reward``, ``template``... Unknown keys fail with one line naming the key.
* ``extras`` (the dataset row without ``prompt`` / ``env_class``): must name the question
  (``extra_info.question_id``, as :func:`write_dataset` writes). SkyRL adds ``max_turns``
  (``generator.max_turns``); it sets the env's turn limit unless ``env_config`` does.

Register it with :func:`register` (in the process that builds envs: SkyRL's Ray entrypoint;
its keyword arguments are the env's, since SkyRL's config has no slot for them), and write
the training parquet with :func:`write_dataset` or
``python -m research_agents.engines.skyrl --split train --out train.parquet``.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import skyrl_gym
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput, ConversationType

from research_agents.engines.common import (
    engine_metrics,
    env_kwargs,
    pick_question,
    question_rows,
    write_dataset_cli,
    write_parquet,
)
from research_env.env import SearchQAEnv

__all__ = ["ENV_ID", "SearchQASkyRLEnv", "register", "write_dataset"]

ENV_ID = "searchqa"
"""The ``env_class`` SearchQA-v0 is registered under in ``skyrl_gym``."""

ENTRY_POINT = f"{__name__}:SearchQASkyRLEnv"


class SearchQASkyRLEnv(BaseTextEnv):  # type: ignore[misc]  # skyrl_gym ships no types
    """One SearchQA-v0 episode behind SkyRL-Gym's ``init`` / ``step`` API.

    Args:
        env_config: SearchQA-v0 arguments (see the module docstring); they override
            ``defaults``.
        extras: The dataset row: names the question; ``max_turns`` from SkyRL's generator.
        defaults: SearchQA-v0 arguments fixed at :func:`register` time.

    Raises:
        ValueError: On an unknown env argument or a row that names no question.
    """

    def __init__(
        self,
        env_config: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        extras = dict(extras or {})
        kwargs = env_kwargs(defaults, "register()")
        kwargs.update(env_kwargs(env_config, f"environment.skyrl_gym.{ENV_ID}"))
        if "max_turns" not in kwargs and extras.get("max_turns") is not None:
            kwargs["max_turns"] = int(extras["max_turns"])
        self._options = pick_question(extras, "SkyRL dataset row")
        self.env = SearchQAEnv(**kwargs)
        self.max_turns = self.env.max_turns
        self._last_info: dict[str, Any] = {}
        self._started = False

    def init(self, prompt: ConversationType) -> tuple[ConversationType, dict[str, Any]]:
        """Start the row's question; return the env's chat prompt and the reset info.

        The row's ``prompt`` is replaced by the one the env's template builds (the same
        messages when the dataset came from :func:`write_dataset`), so the prompt always
        matches the protocol the env scores with.
        """
        obs, info = self.env.reset(options=self._options)
        self.turns = 0
        self._started = True
        return self.env.template.messages(obs["question"]), dict(info)

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Play one generated segment; ``done`` on an answer, an ended episode or the turn limit."""
        if not self._started:
            raise RuntimeError("call init() before step()")
        self.turns += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        self._last_info = info
        text = obs["observation"]
        observations = [] if done or not text else [{"role": "user", "content": text}]
        return BaseTextEnvStepOutput(
            observations=observations,
            reward=float(reward),
            done=done,
            metadata=_json_safe(info),
        )

    def get_metrics(self) -> dict[str, Any]:
        """Episode numbers SkyRL logs (averaged over episodes by ``aggregate_metrics``)."""
        return engine_metrics(self._last_info, self.turns) if self._last_info else {}

    def close(self) -> None:
        """Close the underlying SearchQA-v0 env."""
        self.env.close()


def _json_safe(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` with anything JSON cannot hold written as text (SkyRL logs metadata)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        try:
            json.dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = repr(value)
    return out


def register(env_id: str = ENV_ID, **env_args: Any) -> None:
    """Register :class:`SearchQASkyRLEnv` in ``skyrl_gym``'s registry.

    SkyRL's config is a fixed dataclass (``environment.skyrl_gym.<env_class>`` exists only for
    its own envs, and ``+key=`` overrides are refused), so the env's arguments are given here,
    in the process that builds envs (SkyRL's Ray entrypoint task). Registering again replaces
    an earlier registration of this env.

    Args:
        env_id: The ``env_class`` to register under.
        **env_args: SearchQA-v0 arguments (``retriever="remote:http://127.0.0.1:8000"``,
            ``split``, ``protocol``...), checked now; an ``env_config`` that SkyRL passes
            overrides them.

    Raises:
        ValueError: On an unknown env argument, or if ``env_id`` belongs to another env.
    """
    defaults = env_kwargs(env_args, "register()")
    spec = skyrl_gym.registry.get(env_id)
    if spec is not None:
        entry = spec.entry_point
        ours = entry in (ENTRY_POINT, SearchQASkyRLEnv) or (
            isinstance(entry, functools.partial) and entry.func is SearchQASkyRLEnv
        )
        if not ours:
            raise ValueError(f"skyrl_gym env id {env_id!r} is already registered to {entry!r}")
        skyrl_gym.envs.registration.deregister(env_id)
    entry_point: Any = (
        functools.partial(SearchQASkyRLEnv, defaults=defaults) if defaults else ENTRY_POINT
    )
    skyrl_gym.register(id=env_id, entry_point=entry_point)


def dataset_rows(
    env_config: Mapping[str, Any] | None = None, env_id: str = ENV_ID
) -> list[dict[str, Any]]:
    """SkyRL dataset rows (``prompt``, ``env_class``, ``reward_spec``, ``extra_info``)."""
    env = SearchQAEnv(**env_kwargs(env_config, "env_config"))
    rows = [
        {
            "data_source": f"searchqa/{env.split}",
            "prompt": row.messages,
            "env_class": env_id,
            "reward_spec": {"method": "rule", "ground_truth": {"target": row.golden_answers}},
            "extra_info": {"question_id": row.question_id, "index": row.index, "split": env.split},
        }
        for row in question_rows(env)
    ]
    env.close()
    return rows


def write_dataset(
    path: str | Path, env_config: Mapping[str, Any] | None = None, env_id: str = ENV_ID
) -> int:
    """Write SkyRL's training parquet for the split ``env_config`` names; return the row count."""
    return write_parquet(path, dataset_rows(env_config, env_id))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m research_agents.engines.skyrl``: write a split as SkyRL's parquet."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="the .parquet file to write")
    parser.add_argument("--split", default="train")
    parser.add_argument("--dataset", default="factbook", help="'factbook' or a .jsonl file")
    parser.add_argument("--protocol", default="ours", help="ours | research | searchr1")
    parser.add_argument("--template", default=None, help="a template name (default: protocol's)")
    args = parser.parse_args(argv)
    config: dict[str, Any] = {
        "dataset": args.dataset,
        "split": args.split,
        "protocol": args.protocol,
    }
    if args.template:
        config["template"] = args.template
    return write_dataset_cli(parser, args.out, lambda: write_dataset(args.out, config))


if __name__ == "__main__":
    raise SystemExit(main())
