"""Subcommands of ``searchqa`` that need only the env (retrieval: index, serve)."""
