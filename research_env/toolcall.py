r"""Tool-call actions for chat models: search through a function call, results as a tool message.

Instruct models trained for function calling (Qwen2.5, Hermes, Llama 3.1...) search by emitting
a call rather than ``<search>`` tags::

    <think> ... </think>
    <tool_call>
    {"name": "search", "arguments": {"query": "capital of Peru"}}
    </tool_call>

and read results from a tool message. :class:`ToolCallFormat` holds everything that differs
from the tag format, so an env (or an engine) can switch formats without changing anything
else — retrieval, answers (still ``<answer> … </answer>``), rewards and token masking:

* :meth:`ToolCallFormat.render_prompt`: the chat prompt with the ``search`` tool's schema
  (:data:`SEARCH_TOOL`) rendered by the tokenizer's own chat template (``tools=[...]``);
* :meth:`ToolCallFormat.parse`: one generated segment into the env's
  :class:`~research_env.actions.Search`, :class:`~research_env.actions.Answer` or
  :class:`~research_env.actions.Invalid`;
* :meth:`ToolCallFormat.observation`: the text to append after a call — the end of the
  assistant turn, the tool message and the next assistant header, exactly as the chat template
  renders that conversation, so ``prompt + segments + observations`` is token for token the
  template's rendering of the same chat (the rollout tokenises each observation once, mask 0);
* :attr:`ToolCallFormat.stop_strings`: ``</tool_call>`` and ``</answer>``.

``gym.make("SearchQA-v0", action_format="tool_call", tokenizer=tok)`` plays this format natively.

Without a tokenizer the ChatML / Hermes layout (``<|im_start|>``, ``<tool_response>``) is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym

from research_env.actions import Action, Invalid, Search, parse_action
from research_env.templates import ChatTokenizer

__all__ = [
    "SEARCH_TOOL",
    "TOOLCALL_INVALID_REASONS",
    "TOOL_STOP_STRINGS",
    "TOOL_SYSTEM_PROMPT",
    "ToolCallActions",
    "ToolCallFormat",
]

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the corpus and return the most relevant passages.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "A short search query."},
            },
            "required": ["query"],
        },
    },
}
"""The ``search`` tool's OpenAI function schema (engines hand the same one to their loops)."""

TOOL_SYSTEM_PROMPT = (
    "You answer questions with the help of a search tool. Think inside <think> </think> "
    "whenever you reason. When a fact is missing, call the search tool with one short query and "
    "read the passages it returns; call it again if you need more. When you are sure, write the "
    "final answer inside <answer> </answer> as a short phrase, a name or a number, with the "
    "exact answer in \\boxed{}."
)
"""The system prompt of the tool-call format (the tool's schema comes from the template)."""

TOOL_STOP_STRINGS: tuple[str, ...] = ("</tool_call>", "</answer>")
"""Generation stops at the end of a call or of an answer (stop strings kept)."""

TOOLCALL_INVALID_REASONS: frozenset[str] = frozenset(
    {"bad_tool_call", "unknown_tool", "search_tag_in_tool_mode"}
)
"""The :class:`Invalid` reasons :meth:`ToolCallFormat.parse` adds to the tag parser's."""

_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_OPEN_CALL = "<tool_call>"
_TOOL_TAG_RE = re.compile(r"<(?=\s{0,32}/?\s{0,32}(?:tool_call|tool_response)\b)", re.IGNORECASE)
_ASSISTANT = "\x00ASSISTANT-SEGMENT\x00"
_RESULT = "\x00TOOL-RESULT\x00"
_CHATML_OBSERVATION = (
    "<|im_end|>\n<|im_start|>user\n<tool_response>\n" + _RESULT + "\n</tool_response><|im_end|>\n"
    "<|im_start|>assistant\n"
)


def defuse_tool_tags(text: str) -> str:
    """Make ``<tool_call>`` / ``<tool_response>`` inside result text inert (``&lt;``)."""
    return _TOOL_TAG_RE.sub("&lt;", text)


class ToolCallFormat:
    """The tool-call action format: prompt, parsing and observation rendering.

    Args:
        tokenizer: The policy's tokenizer; its chat template renders the prompt (with the tool
            schema) and the tool messages. ``None``: ChatML / Hermes layout.
        system_prompt: The system message.
        tool: The tool's OpenAI schema; its name is what :meth:`parse` accepts.

    Raises:
        ValueError: If the chat template does not render the assistant's text verbatim before
            the tool message (the observation could then not be appended as text).
    """

    def __init__(
        self,
        tokenizer: ChatTokenizer | None = None,
        system_prompt: str = TOOL_SYSTEM_PROMPT,
        tool: Mapping[str, Any] = SEARCH_TOOL,
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.tool = dict(tool)
        self.tool_name = str(self.tool["function"]["name"])
        self._before, self._after = self._observation_template().split(_RESULT)

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The strings generation stops on (kept in the output)."""
        return TOOL_STOP_STRINGS

    def messages(self, question: str) -> list[dict[str, str]]:
        """The system and user messages for ``question``."""
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": question.strip()},
        ]

    def render_prompt(self, question: str) -> str:
        """The prompt text: the chat template over :meth:`messages` with ``tools=[tool]``.

        Without a tokenizer: ChatML with the schema in a ``<tools>`` block of the system
        message (the Hermes layout).
        """
        if self.tokenizer is None:
            schema = json.dumps(self.tool)
            system = f"{self.system_prompt}\n\n<tools>\n{schema}\n</tools>"
            return (
                f"<|im_start|>system\n{system}<|im_end|>\n"
                f"<|im_start|>user\n{question.strip()}<|im_end|>\n<|im_start|>assistant\n"
            )
        out = self.tokenizer.apply_chat_template(
            self.messages(question), tools=[self.tool], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(out, str):
            raise TypeError(f"apply_chat_template returned {type(out).__name__}, expected str")
        return out

    def observation(self, result: str) -> str:
        """The text to append after a tool call.

        That is the end of the assistant turn, the tool message holding ``result`` and the
        next assistant header, as the chat template renders them.
        """
        return self._before + defuse_tool_tags(result) + self._after

    def _observation_template(self) -> str:
        if self.tokenizer is None:
            return _CHATML_OBSERVATION
        conversation = [
            *self.messages("q"),
            {"role": "assistant", "content": _ASSISTANT},
            {"role": "tool", "name": self.tool_name, "content": _RESULT},
        ]
        text = self.tokenizer.apply_chat_template(
            conversation, tools=[self.tool], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(text, str) or _ASSISTANT not in text or _RESULT not in text:
            raise ValueError(
                "the tokenizer's chat template does not render an assistant message followed "
                "by a tool message verbatim; it cannot be used with action_format='tool_call'"
            )
        tail = text[text.index(_ASSISTANT) + len(_ASSISTANT) :]
        if tail.count(_RESULT) != 1:
            raise ValueError("the chat template renders the tool result more than once")
        return tail

    def parse(self, segment: str, *, max_query_chars: int = 512) -> Action:
        """Parse one generated segment.

        The first complete ``<tool_call>{json}</tool_call>`` decides: a call of the tool with a
        non-empty string ``query`` is a :class:`Search` (query cleaned and capped as the tag
        parser does); any other call is :class:`Invalid` (``bad_tool_call``: not JSON, not an
        object, no ``query`` string; ``unknown_tool``: another name). Without a call, the tag
        parser reads the segment: an ``<answer>`` is an :class:`Answer`, a ``<search>`` tag is
        ``Invalid("search_tag_in_tool_mode")``, anything else what the tag parser says.
        """
        if not isinstance(segment, str):
            return Invalid("not_text", f"expected str, got {type(segment).__name__}")
        match = _CALL_RE.search(segment)
        if match is None:
            if _OPEN_CALL in segment:
                return Invalid("unclosed_tag", "a <tool_call> without </tool_call>")
            parsed = parse_action(segment, max_query_chars=max_query_chars)
            if isinstance(parsed, Search):
                return Invalid("search_tag_in_tool_mode", "search with the tool, not <search>")
            return parsed
        try:
            call = json.loads(match.group(1))
        except json.JSONDecodeError as e:
            return Invalid("bad_tool_call", f"the tool call is not JSON ({e.msg})")
        if not isinstance(call, dict):
            return Invalid("bad_tool_call", "the tool call is not a JSON object")
        name = call.get("name")
        if name != self.tool_name:
            return Invalid("unknown_tool", f"no tool named {name!r}; call {self.tool_name!r}")
        arguments = call.get("arguments", call.get("parameters"))
        if isinstance(arguments, str):  # some models send the arguments JSON-encoded
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return Invalid("bad_tool_call", "the arguments are not JSON")
        query = arguments.get("query") if isinstance(arguments, dict) else None
        if not isinstance(query, str):
            return Invalid("bad_tool_call", "the call has no string argument 'query'")
        think = segment[: match.start()]
        # The tag parser cleans and caps the query exactly as for <search>.
        parsed = parse_action(f"{think}<search>{query}</search>", max_query_chars=max_query_chars)
        if isinstance(parsed, Invalid) and parsed.reason == "empty_query":
            return parsed
        if not isinstance(parsed, Search):
            # The query contained tag-like text the tag grammar refuses: keep it as a query.
            return Search(query=" ".join(query.split())[:max_query_chars])
        return parsed


class ToolCallActions(gym.Wrapper[dict[str, str], str, dict[str, str], str]):
    """SearchQA-v0 with tool-call actions, as a wrapper (or pass ``action_format="tool_call"``).

    The prompt is :meth:`ToolCallFormat.render_prompt`'s; each segment is parsed by
    :meth:`ToolCallFormat.parse` and played as the equivalent tag action, so retrieval, answer
    scoring, rewards and ``info`` are the env's; the observation after a search is the tool
    message (:meth:`ToolCallFormat.observation`) around the env's result block.
    ``info["invalid_reason"]`` is the tool-call parser's. The env's own ``episode.response``
    holds the equivalent tag text (its format check sees tags).

    Args:
        env: A SearchQA-v0 env (wrapped or not).
        tool_format: The format; default: one over the env's tokenizer.
    """

    def __init__(
        self, env: gym.Env[dict[str, str], str], tool_format: ToolCallFormat | None = None
    ) -> None:
        super().__init__(env)
        inner = env.unwrapped
        self.format = tool_format or ToolCallFormat(getattr(inner, "tokenizer", None))
        self._max_query_chars = int(getattr(inner, "max_query_chars", 512))

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The strings generation stops on (kept)."""
        return self.format.stop_strings

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Reset the env; the prompt is the tool-call format's."""
        obs, info = self.env.reset(seed=seed, options=options)
        return {**obs, "prompt": self.format.render_prompt(obs["question"])}, info

    def step(self, action: str) -> tuple[dict[str, str], SupportsFloat, bool, bool, dict[str, Any]]:
        """Play one tool-call segment (see the class docstring)."""
        parsed = self.format.parse(action, max_query_chars=self._max_query_chars)
        if isinstance(parsed, Search):
            inner_action = f"<search>{parsed.query}</search>"
        elif isinstance(parsed, Invalid):
            inner_action = ""  # the env records an invalid action
        else:
            inner_action = action
        obs, reward, terminated, truncated, info = self.env.step(inner_action)
        if isinstance(parsed, Invalid):
            info = {**info, "invalid_reason": parsed.reason}
        text = obs["observation"]
        if text and not (terminated or truncated):
            text = self.format.observation(text.strip())
        return {**obs, "observation": text}, reward, terminated, truncated, info
