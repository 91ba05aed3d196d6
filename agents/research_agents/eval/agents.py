"""Turn an :class:`~research_agents.eval.suites.Entry` into an agent the harness can play.

Three families of agents:

* **LLM agents** (``direct``, ``naive-rag``, ``iter-retgen``, ``research``, ``oracle``): a model
  (``smollm2``, ``tiny``, a local Hugging Face folder, or a GRPO checkpoint's ``model/``) run
  by :func:`research_agents.baselines.llm.make_agent` with the suite's generation settings.
  ``research`` is the token-level ReSearch agent: zero-shot models and trained checkpoints
  alike.
* **rule-based references** (``scripted``, ``naive-reader``), no model.
* **user code**, ``module:attribute``: the attribute is an :class:`~research_env.agent.Agent`
  instance, or a callable returning one (called with ``env=`` when it takes that argument),
  or a class with ``reset(question)`` / ``act(observation)`` (wrapped in
  :class:`~research_env.agent.PerEpisode`).

Loading is split in two because the env's prompt needs the model's tokenizer (chat template)
and the agent needs the env: :func:`load_agent` loads the model once; :meth:`LoadedAgent.bind`
makes an agent for one env (one per task of a suite).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from research_agents.eval.fingerprint import weights_hash
from research_agents.eval.suites import Entry
from research_env.agent import Agent, EpisodeAgent, PerEpisode
from research_env.settings import EnvSettings, TurnSettings

if TYPE_CHECKING:
    from research_env.env import SearchQAEnv

__all__ = ["LLM_KINDS", "RULE_KINDS", "LoadedAgent", "load_agent"]

LLM_KINDS: tuple[str, ...] = ("direct", "naive-rag", "iter-retgen", "research", "oracle")
"""Agent kinds that run a language model (``research_agents.baselines.llm``)."""

RULE_KINDS: tuple[str, ...] = ("scripted", "naive-reader")
"""Rule-based reference agents (no model)."""

# Settings that do not change how a trained policy acts, so a suite may differ in them: the
# env's reward preset (EM and F1 are reported regardless) and the sampling of the rollouts
# (evaluation decodes greedily).
_NOT_COMPARED = frozenset({"reward", "temperature", "top_p"})


class MissingCheckpointError(FileNotFoundError):
    """An entry names a checkpoint that does not exist (yet)."""


@dataclass
class LoadedAgent:
    """An entry made ready to play: its tokenizer (for prompts) and a way to bind an env."""

    entry: Entry
    tokenizer: Any | None
    """The model's tokenizer (its chat template formats instruct prompts); ``None`` without
    a model."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Agent kind and name, model name, path and weights hash, checkpoint details."""
    _bind: Callable[[SearchQAEnv], Agent] | None = None

    def bind(self, env: SearchQAEnv) -> Agent:
        """An agent for episodes of ``env`` (one per task)."""
        assert self._bind is not None
        return self._bind(env)


def _checkpoint_details(
    path: Path, generation: TurnSettings, env_settings: EnvSettings | None
) -> dict[str, Any]:
    details: dict[str, Any] = {"path": str(path)}
    if (path / "config.json").is_file():
        from research_agents.grpo.checkpoint import saved_config

        config = saved_config(path)
        details["preset_model"] = config.model
        details["trained_steps_budget"] = config.steps
        trained = _settings_dict(config.env_settings().resolved())
        trained |= _settings_dict(config.turn_settings())
        suite_env = (env_settings or EnvSettings()).resolved()
        suite = _settings_dict(suite_env) | _settings_dict(generation)
        details["trained_settings"] = {k: _jsonable(v) for k, v in trained.items()}
        details["differs_from_suite"] = sorted(
            k
            for k, v in trained.items()
            if k not in _NOT_COMPARED and v is not None and _jsonable(suite.get(k)) != _jsonable(v)
        )
    from research_agents.grpo.checkpoint import read_step

    step = read_step(path)  # JSON alone (an older trainer_state.pt: weights_only, never code)
    if step is not None:
        details["step"] = step
    return details


def _settings_dict(settings: EnvSettings | TurnSettings) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def _load_llm(
    entry: Entry,
    generation: TurnSettings,
    env_settings: EnvSettings | None,
    seed: int,
    batch_size: int,
) -> LoadedAgent:
    from research_agents.models import load_model, load_tokenizer, resolve_model_path

    provenance: dict[str, Any] = {"agent_kind": entry.agent}
    if entry.checkpoint:
        checkpoint = Path(entry.checkpoint)
        model_dir = checkpoint / "model"
        if not (model_dir / "config.json").is_file():
            raise MissingCheckpointError(
                f"no checkpoint at {checkpoint} (expected {model_dir}/config.json; "
                "`searchqa train --preset ...` writes one to <output_dir>/checkpoint)"
            )
        name = str(model_dir)
        provenance["checkpoint"] = _checkpoint_details(checkpoint, generation, env_settings)
        provenance["model"] = str(model_dir)
    elif entry.model:
        name = entry.model
        provenance["model"] = entry.model
    else:
        raise ValueError(f"{entry.display()}: agent {entry.agent!r} needs a model or checkpoint")
    path = resolve_model_path(name)
    provenance["weights_sha256"] = weights_hash(path)
    tokenizer = load_tokenizer(name)
    model = load_model(name).eval()
    from research_agents.baselines.llm import LLMAgentConfig, make_agent
    from research_agents.generation.hf import HFGenerator

    generator = HFGenerator(model, tokenizer, max_batch_size=batch_size)
    # Iter-RetGen's rounds: two (its paper's setting) where the turn budget allows, else as
    # many as it does (each round is a search; the answer takes the last turn).
    max_turns = (env_settings or EnvSettings()).resolved().max_turns or 3
    config = LLMAgentConfig.from_turn_settings(
        generation, iterations=max(1, min(2, max_turns - 1)), seed=seed
    )
    provenance["agent_config"] = _jsonable(config)
    provenance["parameters"] = int(sum(p.numel() for p in model.parameters()))

    def bind(env: SearchQAEnv) -> Agent:
        return make_agent(entry.agent, generator, tokenizer, env=env, config=config)

    return LoadedAgent(entry, tokenizer, provenance, bind)


def _jsonable(obj: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return repr(obj)


def _load_rule(entry: Entry) -> LoadedAgent:
    from research_agents.baselines import NaiveReaderAgent, ScriptedFactbookAgent

    factory: Callable[[], Any] = (
        ScriptedFactbookAgent if entry.agent == "scripted" else NaiveReaderAgent
    )
    name = str(factory().name)
    return LoadedAgent(
        entry,
        None,
        {"agent_kind": entry.agent, "model": None},
        lambda env: PerEpisode(factory, name),
    )


def _load_user(entry: Entry) -> LoadedAgent:
    module_name, _, attribute = entry.agent.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"unknown agent {entry.agent!r}: expected one of "
            f"{', '.join(LLM_KINDS + RULE_KINDS)} or 'module:attribute'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"agent {entry.agent!r}: cannot import {module_name!r} ({e})") from e
    target = getattr(module, attribute, None)
    if target is None:
        raise ValueError(f"agent {entry.agent!r}: module {module_name!r} has no {attribute!r}")

    def bind(env: SearchQAEnv) -> Agent:
        if isinstance(target, Agent) and not inspect.isclass(target):
            return target
        if inspect.isclass(target) and hasattr(target, "reset") and not hasattr(target, "begin"):
            factory = cast("Callable[[], EpisodeAgent]", target)
            return PerEpisode(factory, str(getattr(target, "name", attribute)))
        if not callable(target):
            raise TypeError(f"agent {entry.agent!r}: expected an Agent or a callable")
        takes_env = "env" in inspect.signature(target).parameters
        made = target(env=env) if takes_env else target()
        if not isinstance(made, Agent):
            raise TypeError(
                f"agent {entry.agent!r} built a {type(made).__name__}, which is not an Agent "
                "(name, begin(slot, observation, info), act(observations))"
            )
        return made

    return LoadedAgent(entry, None, {"agent_kind": "user", "code": entry.agent}, bind)


def load_agent(
    entry: Entry,
    generation: TurnSettings,
    env_settings: EnvSettings | None,
    *,
    seed: int = 0,
    batch_size: int = 16,
) -> LoadedAgent:
    """Load ``entry``'s model (if any) and return a :class:`LoadedAgent`.

    Args:
        entry: Which agent, model or checkpoint.
        generation: The suite's generation settings (LLM agents decode with them).
        env_settings: The suite's env settings (to compare a checkpoint's training settings).
        seed: Generation seed (recorded; greedy decoding does not draw).
        batch_size: Most sequences generated together.

    Raises:
        MissingCheckpointError: If ``entry.checkpoint`` does not exist.
        ValueError: On an unknown agent kind or an LLM kind without a model.
    """
    if entry.agent in LLM_KINDS:
        return _load_llm(entry, generation, env_settings, seed, batch_size)
    if entry.agent in RULE_KINDS:
        return _load_rule(entry)
    return _load_user(entry)
