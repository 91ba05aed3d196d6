"""Env steps/s with a scripted agent: one SearchQAEnv against SearchQAVectorEnv at 1, 8 and 64.

The player is ``ScriptedFactbookAgent`` (one search per hop, rule-based: no model, so the env is
what is measured), adapted with ``PerEpisode`` and driven by ``research_env.agent.play``, the
driver evaluations use. Every configuration plays the same questions (``--questions`` spread
evenly over the Factbook ``--split``) with the same reset seeds, so every configuration takes
exactly the same steps and sends the same queries; the per-question records are checked to be
identical across configurations. A step is one env action (a search or an answer).

Timed: ``play`` end to end — resets, the agent's ``act`` calls, action parsing, BM25 retrieval
(the single env calls ``search`` once per search action; the vector env calls ``search_batch``
once per round with the queries of all its playing sub-envs), rendering the ``<result>``
blocks, rewards. The agent's own time (its ``begin`` and ``act`` calls) is measured separately
and "env steps/s" leaves it out. Before timing, every configuration plays a few questions
untimed (index loading, the numba kernel's compilation). Each configuration is timed
``--repeats`` times, interleaved (single, 1, 8, 64, single, 1, ...), and the fastest pass is
kept: the machine is shared.

Run: ``.venv/bin/python benchmarks/env_throughput.py`` (all 1,457 train questions, 5 passes;
about 40 seconds on 2 cores), ``--quick`` for 400 questions and 3 passes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from research_agents.baselines import ScriptedFactbookAgent

from research_env.agent import Agent, EpisodeRecord, Observation, PerEpisode, play
from research_env.env import SearchQAEnv
from research_env.vector import SearchQAVectorEnv

MAX_TURNS = 6  # as the baselines demo: enough for the scripted agent's longest plan


class TimedAgent:
    """Wraps an :class:`Agent` and adds up the wall time spent inside it."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def begin(self, slot: int, observation: Observation, info: Mapping[str, Any]) -> None:
        t0 = time.perf_counter()
        self.inner.begin(slot, observation, info)
        self.seconds += time.perf_counter() - t0

    def act(self, observations: Mapping[int, Observation]) -> Mapping[int, str]:
        t0 = time.perf_counter()
        out = self.inner.act(observations)
        self.seconds += time.perf_counter() - t0
        return out


@dataclass
class Result:
    """The fastest pass of one configuration."""

    config: str
    num_envs: int | None
    """``None`` for the single env."""
    episodes: int
    steps: int
    wall_s: float
    agent_s: float
    em: float
    passes: list[float]
    """Wall time of every timed pass (s)."""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.wall_s

    @property
    def env_steps_per_s(self) -> float:
        return self.steps / (self.wall_s - self.agent_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "steps_per_s": self.steps_per_s,
            "env_steps_per_s": self.env_steps_per_s,
        }


def spread(total: int, n: int | None) -> list[int]:
    """``n`` question indices spread evenly over ``range(total)`` (all of them for ``None``).

    The Factbook splits are sorted by question type, so a prefix would hold one type only.
    """
    if n is None or n >= total:
        return list(range(total))
    return [i * total // n for i in range(n)]


def make_env(num_envs: int | None, split: str) -> SearchQAEnv | SearchQAVectorEnv:
    if num_envs is None:
        return SearchQAEnv(split=split, max_turns=MAX_TURNS)
    return SearchQAVectorEnv(num_envs, split=split, max_turns=MAX_TURNS)


def play_once(
    env: SearchQAEnv | SearchQAVectorEnv, indices: Sequence[int]
) -> tuple[float, float, list[EpisodeRecord]]:
    """Play ``indices`` once with a fresh scripted agent: wall s, agent s, records."""
    agent = TimedAgent(PerEpisode(ScriptedFactbookAgent, name="scripted"))
    t0 = time.perf_counter()
    records = play(agent, env, indices, seed=0)
    return time.perf_counter() - t0, agent.seconds, records


def run(
    questions: int | None = None,
    repeats: int = 3,
    sizes: Sequence[int] = (1, 8, 64),
    split: str = "train",
    log: Any = sys.stderr,
) -> list[Result]:
    """Time the single env and a vector env of each size; return one result per configuration.

    Raises:
        RuntimeError: If two configurations played differently (they must not).
    """
    configs: list[tuple[str, int | None]] = [("SearchQAEnv", None)]
    configs += [(f"SearchQAVectorEnv({n})", n) for n in sizes]
    envs = {name: make_env(n, split) for name, n in configs}
    single = envs[configs[0][0]]
    assert isinstance(single, SearchQAEnv)
    indices = spread(len(single.examples), questions)
    warmup = indices[: min(len(indices), 2 * max(sizes, default=1))]
    for name, env in envs.items():
        print(f"... warm-up {name}", file=log, flush=True)
        play_once(env, warmup)

    passes: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in configs}
    reference: list[dict[str, Any]] | None = None
    records: dict[str, list[EpisodeRecord]] = {}
    for r in range(repeats):
        for name, env in envs.items():
            wall, agent_s, recs = play_once(env, indices)
            passes[name].append((wall, agent_s))
            records[name] = recs
            print(f"... pass {r + 1}/{repeats} {name}: {wall:.2f} s", file=log, flush=True)
            same = [x.as_dict() for x in recs]
            if reference is None:
                reference = same
            elif same != reference:
                raise RuntimeError(f"{name} played differently from {configs[0][0]}")

    results = []
    for name, n in configs:
        wall, agent_s = min(passes[name])
        recs = records[name]
        results.append(
            Result(
                config=name,
                num_envs=n,
                episodes=len(recs),
                steps=sum(x.turns for x in recs),
                wall_s=wall,
                agent_s=agent_s,
                em=sum(x.em for x in recs) / len(recs),
                passes=[w for w, _ in passes[name]],
            )
        )
    return results


def table(results: Sequence[Result]) -> str:
    base = results[0].steps_per_s
    lines = [
        "| env | episodes | steps | wall (s) | steps/s | agent (s) | env steps/s, agent time "
        "excluded | steps/s vs single env |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.config} | {r.episodes:,} | {r.steps:,} | {r.wall_s:.2f} | "
            f"{r.steps_per_s:,.0f} | {r.agent_s:.2f} | {r.env_steps_per_s:,.0f} | "
            f"{r.steps_per_s / base:.2f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--split", default="train", choices=["train", "dev", "test"])
    ap.add_argument("--questions", type=int, default=None, help="default: the whole split")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per configuration")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64], help="vector env sizes")
    ap.add_argument("--quick", action="store_true", help="400 questions, 3 passes")
    args = ap.parse_args(argv)
    if args.quick:
        args.questions, args.repeats = 400, 3
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"python {platform.python_version()}"
    )
    print(f"# {' '.join(sys.argv)}")
    results = run(args.questions, args.repeats, args.sizes, args.split)
    r0 = results[0]
    print(
        f"\nScripted agent on the Factbook {args.split} split, BM25 top-5, max_turns={MAX_TURNS}: "
        f"{r0.episodes:,} episodes, {r0.steps:,} steps, EM {r0.em:.3f} (identical records in "
        f"every configuration); fastest of {args.repeats} passes\n"
    )
    print(table(results))
    print(f"\n# load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
