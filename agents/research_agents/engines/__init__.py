"""SearchQA-v0 inside distributed RL engines: SkyRL-Gym, verifiers and verl.

Each engine has its own module, importable only when that engine is installed:

* :mod:`research_agents.engines.skyrl`: a ``skyrl_gym`` ``BaseTextEnv`` (``pip install
  'research-env[skyrl]'``);
* :mod:`research_agents.engines.verifiers_env`: a ``verifiers`` taskset with a
  ``load_environment`` entry point (``pip install 'research-env[verifiers]'``);
* :mod:`research_agents.engines.verl_tool`: a search tool for verl's tool agent loop (its own
  venv, ``make test-verl``).

:mod:`research_agents.engines.common` holds what they share and needs none of them.
"""
