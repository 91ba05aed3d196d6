"""One declaration of the episode rules and the turn settings, shared by every route."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from research_env.env import SearchQAEnv
from research_env.protocols import get_protocol
from research_env.settings import EnvSettings, TurnSettings, settings_from


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_env_settings_are_the_envs_own_arguments() -> None:
    params = inspect.signature(SearchQAEnv.__init__).parameters
    assert _names(EnvSettings) <= set(params)
    # A field left at None means what the env's keyword does: the protocol's value.
    for name in ("top_k", "max_turns", "reward", "template", "last_turn", "invalid_action"):
        assert params[name].default is None
        assert getattr(EnvSettings(), name) is None


@pytest.mark.parametrize("protocol", ["ours", "research", "searchr1"])
def test_resolved_fills_in_the_protocols_values(protocol: str) -> None:
    proto = get_protocol(protocol)
    got = EnvSettings(protocol=protocol, top_k=7).resolved()
    assert got.top_k == 7  # a set field wins
    assert (got.max_turns, got.reward, got.template) == (
        proto.max_turns,
        proto.reward,
        proto.template,
    )
    assert (got.last_turn, got.invalid_action) == (proto.last_turn, proto.invalid_action)
    env = SearchQAEnv(**EnvSettings(protocol=protocol, top_k=7).env_kwargs())
    assert (env.top_k, env.max_turns, env.last_turn, env.invalid_action) == (
        got.top_k,
        got.max_turns,
        got.last_turn,
        got.invalid_action,
    )
    env.close()


def test_turn_settings_reject_bad_values_with_the_class_name() -> None:
    with pytest.raises(ValueError, match=r"TurnSettings\.top_p: expected in \(0, 1\], got 0"):
        TurnSettings(top_p=0)
    with pytest.raises(ValueError, match=r"TurnSettings\.max_new_tokens"):
        TurnSettings(max_new_tokens=0)


def test_settings_from_takes_same_named_fields_of_objects_and_mappings() -> None:
    assert settings_from(TurnSettings, {"max_new_tokens": 8, "lr": 1.0}) == TurnSettings(8)
    got = settings_from(EnvSettings, {"top_k": 2}, max_turns=6)
    assert (got.top_k, got.max_turns, got.reward) == (2, 6, None)


def test_every_route_embeds_the_same_declarations() -> None:
    from research_agents.baselines.llm import LLMAgentConfig
    from research_agents.grpo.config import GRPOConfig
    from research_agents.sb3.choice_env import ChoiceEnvConfig
    from research_agents.trl_interop import SearchQARolloutConfig

    # by inheritance everywhere; GRPOConfig stays flat (one --field per setting) all the same
    assert issubclass(GRPOConfig, EnvSettings) and issubclass(GRPOConfig, TurnSettings)
    assert _names(EnvSettings) | _names(TurnSettings) <= _names(GRPOConfig)
    assert issubclass(SearchQARolloutConfig, EnvSettings)
    assert issubclass(ChoiceEnvConfig, EnvSettings)
    assert issubclass(LLMAgentConfig, TurnSettings)
    for cls in (GRPOConfig, SearchQARolloutConfig, ChoiceEnvConfig, LLMAgentConfig):
        own = {f.name for f in dataclasses.fields(cls)}
        for base in (EnvSettings, TurnSettings):
            if issubclass(cls, base):
                # no field of the base is declared again with another type
                for f in dataclasses.fields(base):
                    assert f.name in own


def test_grpo_config_hands_on_its_settings() -> None:
    from research_agents.grpo.presets import get_preset

    cfg = get_preset("factbook-smollm2-multihop")
    env, turns = cfg.env_settings(), cfg.turn_settings()
    assert (env.top_k, env.max_turns, env.template, env.invalid_action) == (
        4,
        4,
        "research_hops",
        "correct",
    )
    assert (turns.turn_prefix, turns.max_response_tokens, turns.temperature) == ("<", 1000, 0.0)
    assert cfg.turn_settings(temperature=cfg.temperature).temperature == 0.7


def test_factbook_suites_play_their_presets_settings() -> None:
    from research_agents.eval.suites import get_suite
    from research_agents.grpo.presets import get_preset

    for suite, preset in (
        ("factbook", "factbook-smollm2"),
        ("factbook-multihop", "factbook-smollm2-multihop"),
        ("factbook-multihop-boxed", "factbook-smollm2-multihop-boxed"),
    ):
        s, cfg = get_suite(suite), get_preset(preset)
        assert s.env == cfg.env_settings(reward="em")
        assert s.generation == cfg.turn_settings()


def test_stored_results_keep_their_protocol_hashes_and_the_boxed_suite_has_its_own() -> None:
    import json
    from pathlib import Path

    from research_agents.eval.harness import suite_protocol
    from research_agents.eval.suites import get_suite

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    hashes = {}
    for suite in ("factbook-multihop", "factbook-multihop-boxed"):
        hashes[suite] = suite_protocol(get_suite(suite))[1]
        stored = {
            json.loads(f.read_text())["protocol_hash"] for f in (results / suite).glob("*.json")
        }
        assert stored == {hashes[suite]}, suite  # adding answer_continuation changed no hash
    assert hashes["factbook-multihop"] != hashes["factbook-multihop-boxed"]
    assert get_suite("factbook-multihop-boxed").generation.answer_continuation == "\\boxed{"
    assert get_suite("factbook-multihop").generation.answer_continuation == ""
