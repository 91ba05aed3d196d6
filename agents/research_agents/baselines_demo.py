"""Rule-based reference agents on SearchQA-v0: transcripts, then an EM table (no torch needed).

The players are a naive reader (search the question once, read the top passage) and a scripted
agent that decomposes each multi-hop question into one search per hop. Transcripts of a few
episodes come first, then EM / F1 on the dev split.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import research_env  # noqa: F401  (registers SearchQA-v0)
from research_agents.baselines import NaiveReaderAgent, ScriptedFactbookAgent
from research_agents.evaluate import Summary, evaluate, play_episode


def _table(summaries: list[Summary]) -> str:
    types = sorted({t for s in summaries for t in s.by_type})
    head = ["agent", "EM", "F1", "format ok", "searches/q", *(f"EM {t}" for t in types)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [s.agent, f"{s.em:.3f}", f"{s.f1:.3f}", f"{s.format_ok:.2f}", f"{s.searches:.2f}"]
        cells += [f"{s.by_type[t][1]:.2f}" if t in s.by_type else "-" for t in types]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    parser.add_argument("--episodes", type=int, default=3, help="transcripts to print")
    parser.add_argument("--limit", type=int, default=None, help="questions to evaluate")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    env = gym.make("SearchQA-v0", split=args.split, max_turns=6, render_mode="ansi")
    n = len(env.unwrapped.examples)  # type: ignore[attr-defined]
    print(
        f"SearchQA-v0 on the Factbook world, split {args.split!r}: {n} questions "
        f"(ready in {time.perf_counter() - start:.1f} s)\n"
    )

    scripted = ScriptedFactbookAgent()
    for i in range(args.episodes):
        index = (i * 37) % n
        info = play_episode(env, scripted, index)
        print(f"=== episode {i + 1}: question #{index} ({info['question_type']}) ===")
        print(env.render())
        print(f"reward components: {info['reward_components']}  gold: {info['golden_answers']}\n")

    start = time.perf_counter()
    summaries = [evaluate(env, agent, args.limit) for agent in (NaiveReaderAgent(), scripted)]
    elapsed = time.perf_counter() - start
    episodes = sum(s.episodes for s in summaries)
    print(f"Evaluation on {args.split} ({episodes} episodes in {elapsed:.1f} s):\n")
    print(_table(summaries))


if __name__ == "__main__":
    main()
