"""Evaluation harness, protocol fingerprints and leaderboard of SearchQA-v0 agents.

* :mod:`.suites`: what is asked and under which settings (:class:`Suite`, :func:`get_suite`);
* :mod:`.harness`: :func:`run_suite` plays any agent over a suite and returns a
  :class:`SuiteResult` (metrics with bootstrap intervals, per-question records, fingerprint);
* :mod:`.metrics`: the metrics and bootstrap confidence intervals;
* :mod:`.fingerprint`: the protocol (what must match for results to be compared) versus the
  provenance (what was measured);
* :mod:`.judge`: an optional LLM-as-judge over any OpenAI-compatible server;
* :mod:`.leaderboard`: results as JSON, rendered as Markdown tables and a PNG chart grouped by
  protocol.

Nothing here imports torch until a model is loaded.
"""

from research_agents.eval.harness import SuiteResult, TaskResult, run_suite, suite_protocol
from research_agents.eval.metrics import Summary, bootstrap_ci, bootstrap_cis, summarise
from research_agents.eval.suites import SUITES, Entry, Suite, Task, get_suite
from research_env.settings import EnvSettings, TurnSettings

__all__ = [
    "SUITES",
    "Entry",
    "EnvSettings",
    "Suite",
    "SuiteResult",
    "Summary",
    "Task",
    "TaskResult",
    "TurnSettings",
    "bootstrap_ci",
    "bootstrap_cis",
    "get_suite",
    "run_suite",
    "suite_protocol",
    "summarise",
]
