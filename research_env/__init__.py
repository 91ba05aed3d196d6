"""research-env: Gymnasium environments for training LLMs to reason with search.

Importing the package registers ``SearchQA-v0``::

    import gymnasium as gym
    import research_env  # noqa: F401

    env = gym.make("SearchQA-v0")

``gym.make("research_env:SearchQA-v0")`` imports and registers in one step, and
``gym.make_vec("SearchQA-v0", num_envs=8, vectorization_mode="vector_entry_point")`` gives the
batched vector env (one retrieval call per step for all sub-envs).
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENV_ID = "SearchQA-v0"

if ENV_ID not in registry:  # importing twice (or reloading) must not warn
    register(
        id=ENV_ID,
        entry_point="research_env.env:SearchQAEnv",
        vector_entry_point="research_env.vector:SearchQAVectorEnv",
    )

__all__ = ["ENV_ID", "__version__"]
