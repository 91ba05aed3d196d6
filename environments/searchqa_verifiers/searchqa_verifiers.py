"""SearchQA-v0 for verifiers: the plugin module ``--env.taskset.id searchqa-verifiers`` imports.

verifiers resolves a taskset id to a top-level module and takes the ``Taskset``, ``Task`` and
``Harness`` subclasses it exports through ``__all__``; the code lives in
:mod:`research_agents.engines.verifiers_env`.
"""

from research_agents.engines.verifiers_env import (
    SearchQAHarness,
    SearchQAHarnessConfig,
    SearchQATask,
    SearchQATaskData,
    SearchQATaskset,
    SearchQATasksetConfig,
    load_environment,
)

__all__ = [
    "SearchQAHarness",
    "SearchQAHarnessConfig",
    "SearchQATask",
    "SearchQATaskData",
    "SearchQATaskset",
    "SearchQATasksetConfig",
    "load_environment",
]
