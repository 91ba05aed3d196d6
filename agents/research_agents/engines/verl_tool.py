"""A SearchQA search tool for verl's tool agent loop (its own venv: ``make test-verl``).

:class:`SearchQATool` is a ``verl.tools.base_tool.BaseTool``: verl's multi-turn rollout (the
``tool_agent`` agent loop) calls it when the policy emits a ``search`` tool call, and sends the
text back as a tool message. It searches any retriever SearchQA-v0 can (``"remote:<url>"`` for
``searchqa serve``, ``"bm25"`` for the embedded Factbook index) and renders the passages with a
SearchQA-v0 template, so the model reads results exactly as in the env. Declare it in verl's
tool config (``actor_rollout_ref.rollout.multi_turn.tool_config_path``)::

    tools:
      - class_name: research_agents.engines.verl_tool.SearchQATool
        config:
          type: native
          retriever: remote:http://127.0.0.1:8000
          top_k: 3
          template: searchr1

The tool's schema (name ``search``, one string argument ``query``:
:data:`research_env.toolcall.SEARCH_TOOL`) is built in; a ``tool_schema`` entry in the YAML
replaces it. The tool's own reward is 0: :func:`compute_score` is the reward function to give
verl (``reward.custom_reward_function.path=<this file> ...name=compute_score``), and
:func:`write_dataset` (``python -m research_agents.engines.verl_tool --split train --out
train.parquet``) writes verl's parquet with the tool-call prompt of
:class:`~research_env.toolcall.ToolCallFormat` and ``agent_name: tool_agent``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from research_agents.engines.common import (
    env_kwargs,
    question_rows,
    write_dataset_cli,
    write_parquet,
)
from research_env.actions import Answer, parse_action
from research_env.env import SearchQAEnv
from research_env.resolve import resolve_retriever
from research_env.retrieval.base import RetrievalError
from research_env.rewards import exact_match, f1_score
from research_env.templates import get_template
from research_env.toolcall import SEARCH_TOOL, ToolCallFormat

__all__ = ["SearchQATool", "compute_score", "dataset_rows", "write_dataset"]


_KEYS = ("type", "retriever", "top_k", "template", "max_query_chars")


class SearchQATool(BaseTool):  # type: ignore[misc]  # verl ships no py.typed
    """verl tool: ``search(query)`` over a SearchQA-v0 retriever.

    Args:
        config: ``retriever`` (default ``"bm25"``), ``top_k`` (3), ``template`` (the template
            whose observation format renders the passages; default ``"searchr1"``) and
            ``max_query_chars`` (512); verl's ``type: native``.
        tool_schema: verl's parsed schema, or ``None`` for
            :data:`research_env.toolcall.SEARCH_TOOL`.

    Raises:
        ValueError: On an unknown config key or a bad value, naming it.
    """

    def __init__(self, config: dict[str, Any], tool_schema: Any = None) -> None:
        unknown = sorted(set(config) - set(_KEYS))
        if unknown:
            raise ValueError(
                f"SearchQATool config: unknown key(s) {unknown}; expected {list(_KEYS)}"
            )
        top_k = config.get("top_k", 3)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"SearchQATool config.top_k: expected an int >= 1, got {top_k!r}")
        self.retriever = resolve_retriever(config.get("retriever", "bm25"))
        self.template = get_template(config.get("template", "searchr1"))
        self.top_k = top_k
        self.max_query_chars = int(config.get("max_query_chars", 512))
        self._searches: dict[str, int] = {}
        schema = tool_schema or OpenAIFunctionToolSchema.model_validate(SEARCH_TOOL)
        super().__init__(config, schema)

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, Any]:
        """Start a trajectory's instance (counts its searches)."""
        instance_id = instance_id or str(uuid4())
        self._searches[instance_id] = 0
        return instance_id, ToolResponse()

    async def execute(
        self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
    ) -> tuple[Any, float, dict[str, Any]]:
        """Search for ``parameters["query"]``; the passages as text, reward 0, and metrics.

        A missing or non-string query, or a failed retrieval, comes back as the tool's text
        (the model sees what went wrong), never as an exception in verl's rollout worker.
        """
        query = parameters.get("query")
        if not isinstance(query, str) or not query.strip():
            return (
                ToolResponse(text=f"error: 'query' must be a non-empty string, got {query!r}"),
                0.0,
                {},
            )
        query = query.strip()[: self.max_query_chars]
        try:
            passages = await asyncio.to_thread(self.retriever.search, query, self.top_k)
        except RetrievalError as e:
            return ToolResponse(text=f"error: retrieval failed: {e}"), 0.0, {"retrieval_error": 1}
        self._searches[instance_id] = self._searches.get(instance_id, 0) + 1
        text = self.template.format_observation(passages)
        return ToolResponse(text=text), 0.0, {"retrieved_ids": [p.id for p in passages]}

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        """0: the answer's reward belongs to verl's reward function."""
        return 0.0

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        """Forget the instance."""
        self._searches.pop(instance_id, None)

    def searches(self, instance_id: str) -> int:
        """How many searches the instance ran."""
        return self._searches.get(instance_id, 0)


_ANSWER_RE = re.compile(r"<answer>.*?</answer>", re.DOTALL | re.IGNORECASE)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Mapping[str, Any],
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    r"""Verl's reward function: EM of the last ``<answer>`` in the response (F1 logged).

    The answer is extracted as the env extracts it (``\boxed{}`` content when present);
    ``extra_info["reward"] = "f1"`` makes the score F1 instead of EM.

    Args:
        data_source: verl's data source column (unused).
        solution_str: The decoded response (tool calls and tool messages included).
        ground_truth: ``{"target": [answers...]}``, as :func:`dataset_rows` writes it.
        extra_info: The row's ``extra_info``.
        **kwargs: Whatever else verl passes.

    Returns:
        ``score`` (what verl trains on), ``em``, ``f1`` and ``answered``.
    """
    golds = [str(g) for g in ground_truth["target"]]
    answers = _ANSWER_RE.findall(solution_str)
    parsed = parse_action(answers[-1]) if answers else None
    if not isinstance(parsed, Answer):
        return {"score": 0.0, "em": 0.0, "f1": 0.0, "answered": 0.0}
    em, f1 = exact_match(parsed.text, golds), f1_score(parsed.text, golds)
    use_f1 = (extra_info or {}).get("reward") == "f1"
    return {"score": f1 if use_f1 else em, "em": em, "f1": f1, "answered": 1.0}


def dataset_rows(env_config: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Verl dataset rows: tool-call chat prompt, ``reward_model.ground_truth``, ``extra_info``."""
    env = SearchQAEnv(**env_kwargs(env_config, "env_config"))
    fmt = ToolCallFormat()
    rows = [
        {
            "data_source": f"searchqa/{env.split}",
            "agent_name": "tool_agent",
            "prompt": fmt.messages(row.question),
            "ability": "search",
            "reward_model": {"style": "rule", "ground_truth": {"target": row.golden_answers}},
            "extra_info": {
                "index": row.index,
                "question_id": row.question_id,
                "split": env.split,
                "need_tools_kwargs": False,
            },
        }
        for row in question_rows(env)
    ]
    env.close()
    return rows


def write_dataset(path: str | Path, env_config: Mapping[str, Any] | None = None) -> int:
    """Write verl's parquet for the split ``env_config`` names; return the row count."""
    return write_parquet(path, dataset_rows(env_config))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m research_agents.engines.verl_tool``: write a split as verl's parquet."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="the .parquet file to write")
    parser.add_argument("--split", default="train")
    parser.add_argument("--dataset", default="factbook", help="'factbook' or a .jsonl file")
    args = parser.parse_args(argv)
    config = {"dataset": args.dataset, "split": args.split}
    return write_dataset_cli(parser, args.out, lambda: write_dataset(args.out, config))


if __name__ == "__main__":
    raise SystemExit(main())
