"""Baselines: rule-based agents (reference points, the demo's players) and LLM baselines.

The LLM baselines (:mod:`.llm`: direct answer, naive RAG, Iter-RetGen, zero-shot ReSearch, a
retrieval oracle) need a generator and a tokenizer but import without torch.
"""

from research_agents.baselines.llm import AGENT_KINDS, LLMAgentConfig, PromptAgent, make_agent
from research_agents.baselines.policy_agent import ResearchPolicyAgent
from research_agents.baselines.readers import NaiveReaderAgent, parse_result_block
from research_agents.baselines.scripted import ScriptedFactbookAgent

__all__ = [
    "AGENT_KINDS",
    "LLMAgentConfig",
    "NaiveReaderAgent",
    "PromptAgent",
    "ResearchPolicyAgent",
    "ScriptedFactbookAgent",
    "make_agent",
    "parse_result_block",
]
