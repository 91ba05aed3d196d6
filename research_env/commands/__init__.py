"""Subcommands of ``searchqa`` that need only the env (retrieval: index, serve).

Shared by every subcommand: :class:`UsageError` (bad input a user can fix; the CLI prints it as
one line and exits 2) and :func:`missing_extra` (which optional extra a missing module belongs
to, so an env-only install says what to ``pip install`` instead of printing a traceback).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXTRAS: dict[str, str] = {
    "torch": "agent",
    "transformers": "agent",
    "accelerate": "agent",
    "safetensors": "agent",
    "gguf": "agent",
    "matplotlib": "agent",
    "tensorboard": "agent",
    "peft": "lora",
    "trl": "trl",
    "stable_baselines3": "sb3",
    "faiss": "dense",
    "sentence_transformers": "dense",
    "fastapi": "server",
    "uvicorn": "server",
    "httpx": "server",
    "yaml": "agent",
}
"""Top-level module -> the ``research-env[...]`` extra that installs it."""


class UsageError(ValueError):
    """Input a user can fix (a flag, a value, a path): printed as one line, exit status 2.

    A :class:`ValueError`, so library callers that catch ``ValueError`` keep working.
    """


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The one-line advice for a missing optional module, or ``None`` if it is not an extra's.

    >>> missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    "needs torch, from the 'agent' extra: pip install 'research-env[agent]' (CPU: pip install torch==2.13.0 first)"
    """  # noqa: E501
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    advice = f"needs {top}, from the {extra!r} extra: pip install 'research-env[{extra}]'"
    if extra == "agent":
        advice += " (CPU: pip install torch==2.13.0 first)"
    return advice


def choices_hint(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``value`` is close to one of ``choices``, else ``""``.

    >>> choices_hint("tinyy", ["tiny", "factbook-smollm2"])
    "; did you mean 'tiny'?"
    """
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
