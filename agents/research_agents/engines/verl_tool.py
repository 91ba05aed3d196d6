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

The tool's schema (name ``search``, one string argument ``query``) is built in; a
``tool_schema`` entry in the YAML replaces it. Rewards stay with verl's reward function (score
the final answer with :func:`research_env.rewards.exact_match` or the protocol's
``score_response``); the tool returns 0.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from research_env.resolve import resolve_retriever
from research_env.retrieval.base import RetrievalError
from research_env.templates import get_template

__all__ = ["SEARCH_SCHEMA", "SearchQATool"]

SEARCH_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the corpus; returns the most relevant passages.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "A short search query."}},
            "required": ["query"],
        },
    },
}
"""The ``search`` tool's OpenAI function schema."""

_KEYS = ("type", "retriever", "top_k", "template", "max_query_chars")


class SearchQATool(BaseTool):  # type: ignore[misc]  # verl ships no py.typed
    """verl tool: ``search(query)`` over a SearchQA-v0 retriever.

    Args:
        config: ``retriever`` (default ``"bm25"``), ``top_k`` (3), ``template`` (the template
            whose observation format renders the passages; default ``"searchr1"``) and
            ``max_query_chars`` (512); verl's ``type: native``.
        tool_schema: verl's parsed schema, or ``None`` for :data:`SEARCH_SCHEMA`.

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
        schema = tool_schema or OpenAIFunctionToolSchema.model_validate(SEARCH_SCHEMA)
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
