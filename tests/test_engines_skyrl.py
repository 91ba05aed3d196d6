"""SearchQA-v0 driven through skyrl_gym's own registry, ``make`` and metrics aggregation.

Retrieval goes over HTTP to a real retrieval server on 127.0.0.1 (what ``searchqa serve``
runs), the path SkyRL's search recipe uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.engines
skyrl_gym = pytest.importorskip("skyrl_gym", reason="needs the skyrl extra (skyrl-gym)")
pytest.importorskip("fastapi", reason="needs the server extra")
from omegaconf import DictConfig  # noqa: E402  (a skyrl-gym dependency)
from research_agents.engines import skyrl as sk  # noqa: E402
from skyrl_gym.metrics import aggregate_for_environment  # noqa: E402

from research_env.data.types import Passage  # noqa: E402
from research_env.retrieval import BM25Retriever  # noqa: E402
from research_env.retrieval.server import BackgroundServer, ServerConfig  # noqa: E402

CORPUS = [
    Passage("peru/capital", "Peru — Capital", "name: Lima"),
    Passage("chile/capital", "Chile — Capital", "name: Santiago"),
    Passage("kenya/capital", "Kenya — Capital", "name: Nairobi"),
]
QUESTIONS = [
    {"id": "q-peru", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]},
    {"id": "q-chile", "question": "What is the capital of Chile?", "golden_answers": ["Santiago"]},
]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(BM25Retriever(CORPUS, persist=False), ServerConfig(port=0)) as s:
        yield s


@pytest.fixture(scope="module")
def env_config(server: BackgroundServer, tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    path = tmp_path_factory.mktemp("skyrl") / "qa.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    sk.register()
    return DictConfig(
        {"dataset": str(path), "retriever": f"remote:{server.url}", "top_k": 2, "reward": "em"}
    )


def make(env_config: DictConfig, qid: str, max_turns: int = 3):  # type: ignore[no-untyped-def]
    extras = {
        "reward_spec": {"method": "rule", "ground_truth": {"target": ["unused"]}},
        "extra_info": {"question_id": qid},
        "max_turns": max_turns,  # what SkyRL's generator injects
    }
    return skyrl_gym.make(sk.ENV_ID, env_config=env_config, extras=extras)


def test_registered_and_made_by_skyrl_gym(env_config):
    assert sk.ENV_ID in skyrl_gym.registry
    env = make(env_config, "q-peru")
    assert isinstance(env, skyrl_gym.Env)
    assert env.spec.id == sk.ENV_ID
    assert env.max_turns == 3  # from the extras SkyRL passes
    sk.register()  # idempotent


def test_search_then_answer_episode(env_config):
    env = make(env_config, "q-peru")
    messages, info = env.init([{"role": "user", "content": "ignored"}])
    assert messages[-1] == {"role": "user", "content": "What is the capital of Peru?"}
    assert messages[0]["role"] == "system" and "<search>" in messages[0]["content"]
    assert info["question_id"] == "q-peru"

    out = env.step("<think>look it up</think><search>capital of Peru</search>")
    assert out["done"] is False and out["reward"] == 0.0
    [obs] = out["observations"]
    assert obs["role"] == "user"
    assert "<result>" in obs["content"] and "Lima" in obs["content"]
    assert out["metadata"]["retrieved_ids"][0] == "peru/capital"
    json.dumps(out["metadata"])  # SkyRL logs it

    out = env.step("<answer>\\boxed{Lima}</answer>")
    assert out["done"] is True and out["reward"] == 1.0 and out["observations"] == []
    metrics = env.get_metrics()
    assert metrics["em"] == 1.0 and metrics["searches"] == 1.0 and metrics["turns"] == 2.0


def test_wrong_answer_and_turn_limit(env_config):
    env = make(env_config, "q-chile")
    env.init([])
    out = env.step("<answer>\\boxed{Lima}</answer>")
    assert out["done"] is True and out["reward"] == 0.0

    env = make(env_config, "q-chile", max_turns=1)
    env.init([])
    out = env.step("<search>capital of Chile</search>")
    assert out["done"] is True and out["reward"] == 0.0  # truncated at SkyRL's max_turns
    assert out["metadata"]["end_reason"] == "max_turns"


def test_aggregate_metrics_through_skyrl(env_config):
    per_episode = []
    for qid, answer in [("q-peru", "Lima"), ("q-chile", "Lima")]:
        env = make(env_config, qid)
        env.init([])
        env.step(f"<answer>\\boxed{{{answer}}}</answer>")
        per_episode.append(env.get_metrics())
    agg = aggregate_for_environment(sk.ENV_ID, per_episode)
    assert agg["em"] == 0.5 and agg["answered"] == 1.0


def test_register_defaults_are_overridden_by_env_config(env_config):
    # SkyRL passes env_config={} for env classes its config does not know: register() holds
    # the arguments then.
    sk.register(**env_config)
    env = skyrl_gym.make(sk.ENV_ID, env_config={}, extras={"extra_info": {"question_id": "q-peru"}})
    env.init([])
    assert env.env.top_k == 2
    env = skyrl_gym.make(
        sk.ENV_ID, env_config={"top_k": 1}, extras={"extra_info": {"question_id": "q-peru"}}
    )
    assert env.env.top_k == 1
    with pytest.raises(ValueError, match=r"register\(\)\.topk: not an argument"):
        sk.register(topk=1)
    sk.register()  # back to no defaults for the other tests
    with pytest.raises(ValueError, match="already registered"):
        sk.register("search")  # skyrl-gym's own search env


def test_bad_config_and_rows_fail_with_one_line(env_config):
    bad = DictConfig({**env_config, "topk": 3})
    with pytest.raises(ValueError, match=r"environment\.skyrl_gym\.searchqa\.topk: not an arg"):
        make(bad, "q-peru")
    with pytest.raises(ValueError, match="names no question"):
        skyrl_gym.make(sk.ENV_ID, env_config=env_config, extras={"max_turns": 2})
    env = make(env_config, "q-nope")
    with pytest.raises(ValueError, match="no question with id 'q-nope'"):
        env.init([])


def test_written_dataset_drives_the_env(env_config, tmp_path: Path):
    import pandas as pd

    out = tmp_path / "train.parquet"
    assert sk.write_dataset(out, env_config) == 2
    df = pd.read_parquet(out)
    assert list(df["env_class"]) == [sk.ENV_ID, sk.ENV_ID]
    for record in df.to_dict("records"):
        # SkyRL's dataset: the prompt and env_class are popped, the rest are the extras.
        prompt = [dict(m) for m in record.pop("prompt")]
        env = skyrl_gym.make(record.pop("env_class"), env_config=env_config, extras=record)
        messages, _ = env.init(prompt)
        assert messages == prompt
        gold = next(iter(record["reward_spec"]["ground_truth"]["target"]))
        assert env.step(f"<answer>\\boxed{{{gold}}}</answer>")["reward"] == 1.0
