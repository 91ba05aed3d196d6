"""SearchQATool loaded and run by verl's own tool registry (``make test-verl``: the verl venv)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.verl
pytest.importorskip("verl", reason="needs the verl venv (make test-verl)")
pytest.importorskip("fastapi", reason="needs the server extra")
from research_agents.engines.verl_tool import SearchQATool  # noqa: E402
from verl.tools.tool_registry import initialize_tools_from_config  # noqa: E402

from research_env.data.types import Passage  # noqa: E402
from research_env.retrieval import BM25Retriever  # noqa: E402
from research_env.retrieval.server import BackgroundServer, ServerConfig  # noqa: E402

CORPUS = [
    Passage("peru/capital", "Peru — Capital", "name: Lima"),
    Passage("chile/capital", "Chile — Capital", "name: Santiago"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(BM25Retriever(CORPUS, persist=False), ServerConfig(port=0)) as s:
        yield s


def load(tmp_path: Path, config: str) -> list:
    path = tmp_path / "tools.yaml"
    path.write_text(
        "tools:\n  - class_name: research_agents.engines.verl_tool.SearchQATool\n"
        f"    config:\n      type: native\n{config}",
        encoding="utf-8",
    )
    return initialize_tools_from_config(str(path))


def test_verl_registry_builds_and_runs_the_tool(server, tmp_path):
    [tool] = load(tmp_path, f"      retriever: remote:{server.url}\n      top_k: 1\n")
    assert isinstance(tool, SearchQATool) and tool.name == "search"
    schema = tool.get_openai_tool_schema().model_dump()
    assert schema["function"]["parameters"]["required"] == ["query"]

    async def episode() -> tuple:
        iid, _ = await tool.create()
        response, reward, metrics = await tool.execute(iid, {"query": "capital of Peru"})
        bad, _, _ = await tool.execute(iid, {"q": 1})
        count = tool.searches(iid)
        await tool.release(iid)
        return response, reward, metrics, bad, count

    response, reward, metrics, bad, count = asyncio.run(episode())
    assert "<information>" in response.text and "Lima" in response.text
    assert "Santiago" not in response.text  # top_k: 1
    assert reward == 0.0 and metrics["retrieved_ids"] == ["peru/capital"]
    assert bad.text.startswith("error: 'query' must be a non-empty string")
    assert count == 1


def test_bad_config_names_the_key(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['topk'\]"):
        load(tmp_path, "      topk: 2\n")


def test_written_dataset_loads_in_verls_rlhf_dataset(server, tmp_path):
    import json

    from omegaconf import DictConfig
    from research_agents.engines.verl_tool import compute_score, write_dataset
    from research_agents.models import TINY, load_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from research_env.toolcall import SEARCH_TOOL, ToolCallFormat

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {"id": "q-peru", "question": "What is the capital of Peru?", "golden_answers": ["Lima"]}
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "train.parquet"
    assert write_dataset(out, {"dataset": str(qa), "retriever": f"remote:{server.url}"}) == 1
    tools = tmp_path / "tools.yaml"
    tools.write_text(
        "tools:\n  - class_name: research_agents.engines.verl_tool.SearchQATool\n"
        f"    config:\n      type: native\n      retriever: remote:{server.url}\n",
        encoding="utf-8",
    )
    config = DictConfig(
        {"tool_config_path": str(tools), "max_prompt_length": 2048, "cache_dir": str(tmp_path)}
    )
    dataset = RLHFDataset(str(out), load_tokenizer(TINY), config)
    assert len(dataset) == 1 and dataset.tool_schemas == [SEARCH_TOOL]
    item = dataset[0]
    assert list(item["raw_prompt"]) == ToolCallFormat().messages("What is the capital of Peru?")
    assert item["agent_name"] == "tool_agent" and item["index"] == 0
    truth = item["reward_model"]["ground_truth"]
    response = (
        '<tool_call>\n{"name": "search", "arguments": {"query": "capital of Peru"}}\n</tool_call>'
        "user\n<tool_response>\nDoc 1 (Title: Peru) name: Lima\n</tool_response>\nassistant\n"
        "<think>It is Lima.</think><answer>\\boxed{Lima}</answer>"
    )
    assert compute_score("searchqa/train", response, truth, item["extra_info"])["score"] == 1.0
    wrong = response.replace("{Lima}</answer>", "{Cusco}</answer>")
    assert compute_score("searchqa/train", wrong, truth)["score"] == 0.0
    assert compute_score("searchqa/train", "no answer", truth)["answered"] == 0.0


class HFServerManager:
    """verl's server-manager call (``generate`` on token ids -> ``TokenOutput``) served by
    HFGenerator in this process, honouring the vLLM sampling keys the loop sends."""

    def __init__(self, generator, script=None):  # type: ignore[no-untyped-def]
        self.generator = generator
        self.script = list(script or [])
        self.calls: list[dict] = []

    async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):  # type: ignore[no-untyped-def]
        from research_agents.generation.base import SamplingParams
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append(dict(sampling_params))
        assert sampling_params["include_stop_str_in_output"] is True
        if self.script:
            ids = self.generator.tokenizer.encode(self.script.pop(0), add_special_tokens=False)
            return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))
        params = SamplingParams(
            max_new_tokens=sampling_params["max_tokens"],
            temperature=sampling_params.get("temperature", 1.0),
            stop=tuple(sampling_params["stop"]),
        )
        [g] = self.generator.generate([prompt_ids], params)
        return TokenOutput(token_ids=g.token_ids, log_probs=g.logprobs)


def agent_loop(server_manager, tokenizer, env):  # type: ignore[no-untyped-def]
    from omegaconf import OmegaConf
    from research_agents.engines.verl_agent_loop import SearchQAAgentLoop
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {"actor_rollout_ref": {"rollout": {"prompt_length": 1024, "response_length": 256}}}
    )
    return SearchQAAgentLoop(
        trainer_config=DictConfigWrap(config),
        server_manager=server_manager,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(OmegaConf.create({})),
        env=env,
    )


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    from research_agents.generation.hf import HFGenerator
    from research_agents.models import TINY, load_model, load_tokenizer

    tok = load_tokenizer(TINY)
    return HFGenerator(load_model(TINY), tok), tok


def test_agent_loop_is_registered_with_verl():
    from research_agents.engines import verl_agent_loop
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    target = _agent_loop_registry[verl_agent_loop.AGENT_NAME]["_target_"]
    assert target == "research_agents.engines.verl_agent_loop.SearchQAAgentLoop"


def test_agent_loop_plays_the_env_with_masks_and_reward(server, tiny):
    generator, tok = tiny
    script = [
        "<think>look</think> <search>capital of Peru</search>",
        "<answer>\\boxed{Lima}</answer>",
    ]
    manager = HFServerManager(generator, script)
    env = {
        "retriever": f"remote:{server.url}",
        "split": "dev",
        "top_k": 1,
        "template": "research_instruct",
    }
    loop = agent_loop(manager, tok, env)
    row = {"extra_info": {"index": 3}}
    out = asyncio.run(loop.run({"temperature": 1.0}, **row))
    ref = SearchQAEnvFor(tok, env)
    obs, _ = ref.reset(options={"index": 3})
    assert out.prompt_ids == tok.encode(obs["prompt"], add_special_tokens=False)
    assert [c["stop"] for c in manager.calls] == [["</search>", "</answer>"]] * 2
    sampled = tok.decode([i for i, m in zip(out.response_ids, out.response_mask) if m])
    observed = tok.decode([i for i, m in zip(out.response_ids, out.response_mask) if not m])
    assert sampled == "".join(script)
    assert observed.startswith(" <result>") and "Peru" in observed
    assert out.response_logprobs == [-0.5 if m else 0.0 for m in out.response_mask]
    golden = ref.unwrapped.examples[3].golden_answers
    assert out.reward_score == (1.0 if "Lima" in golden else 0.0)
    assert out.num_turns == 4 and out.extra_fields["searchqa"]["searches"] == 1.0


def test_agent_loop_with_a_model_keeps_its_logprobs(server, tiny):
    generator, tok = tiny
    manager = HFServerManager(generator)
    loop = agent_loop(manager, tok, {"retriever": f"remote:{server.url}", "split": "dev"})
    out = asyncio.run(loop.run({"temperature": 0.0}, extra_info={"index": 0}))
    n = sum(out.response_mask)
    assert n >= 1 and len(out.response_ids) == len(out.response_mask) <= 256
    assert len(out.response_logprobs) == len(out.response_ids)
    assert out.reward_score == 0.0  # a random model does not answer


def SearchQAEnvFor(tok, env):  # type: ignore[no-untyped-def]
    from research_env.env import SearchQAEnv

    return SearchQAEnv(tokenizer=tok, **env)
