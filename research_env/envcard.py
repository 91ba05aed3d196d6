"""Print the SearchQA-v0 env card (the class docstring) as Markdown.

Run ``python -m research_env.envcard``.

``docs/env.md`` is this output; a test keeps the two identical.
"""

from __future__ import annotations

import inspect

from research_env.env import SearchQAEnv


def env_card() -> str:
    """Return the env card: a title plus the ``SearchQAEnv`` docstring."""
    doc = inspect.cleandoc(SearchQAEnv.__doc__ or "")
    summary, _, body = doc.partition("\n")
    return f"# SearchQA-v0\n\n{summary}\n{body}\n"


if __name__ == "__main__":
    print(env_card(), end="")
