"""Rule-based agents: reference points for learned agents, and the demo's players."""

from research_agents.baselines.readers import NaiveReaderAgent, parse_result_block
from research_agents.baselines.scripted import ScriptedFactbookAgent

__all__ = ["NaiveReaderAgent", "ScriptedFactbookAgent", "parse_result_block"]
