"""Subcommands of ``searchqa`` that need the agent stack (train, eval, leaderboard)."""
