"""research_agents: agents that play SearchQA-v0.

The GRPO token-level agent lives in ``research_agents.grpo`` (it needs the ``agent`` extra);
the rule-based baselines in :mod:`research_agents.baselines` need nothing beyond the env.
"""

__all__: list[str] = []
