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
