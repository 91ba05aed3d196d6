"""Root pytest config: skip doctest collection of engine adapters whose engine is not installed.

``--doctest-modules`` imports every module under ``agents/``; the adapters in
``research_agents.engines`` subclass their engine's classes at import time, so each is collected
only where its engine (an optional extra or venv) is importable.
"""

import importlib.util

_ENGINE_MODULES = {
    "agents/research_agents/engines/skyrl.py": "skyrl_gym",
    "agents/research_agents/engines/verifiers_env.py": "verifiers",
    "agents/research_agents/engines/verl_tool.py": "verl",
    "agents/research_agents/engines/verl_agent_loop.py": "verl",
}

collect_ignore = [
    path for path, module in _ENGINE_MODULES.items() if importlib.util.find_spec(module) is None
]
