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
from research_agents.eval.metrics import Summary, summarise
from research_env.agent import PerEpisode, play


def _table(summaries: dict[str, Summary]) -> str:
    types = sorted({t for s in summaries.values() for t in s.by_type})
    head = ["agent", "EM", "F1", "format ok", "searches/q", *(f"EM {t}" for t in types)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        m = s.metrics
        cells = [name, f"{m['em']:.3f}", f"{m['f1']:.3f}", f"{m['format_ok']:.2f}"]
        cells.append(f"{m['searches']:.2f}")
        cells += [f"{s.by_type[t]['em']:.2f}" if t in s.by_type else "-" for t in types]
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

    scripted = PerEpisode(ScriptedFactbookAgent, name="scripted")
    for i in range(args.episodes):
        index = (i * 37) % n
        (record,) = play(scripted, env, [index])
        print(f"=== episode {i + 1}: question #{index} ({record.question_type}) ===")
        print(env.render())
        print(
            f"EM {record.em:.0f}, F1 {record.f1:.2f}, answer {record.prediction!r}, "
            f"gold: {record.golden_answers}\n"
        )

    start = time.perf_counter()
    indices = range(n if args.limit is None else min(n, args.limit))
    players = (PerEpisode(NaiveReaderAgent, name="naive-reader"), scripted)
    summaries = {p.name: summarise([r.as_dict() for r in play(p, env, indices)]) for p in players}
    elapsed = time.perf_counter() - start
    episodes = sum(s.n for s in summaries.values())
    print(f"Evaluation on {args.split} ({episodes} episodes in {elapsed:.1f} s):\n")
    print(_table(summaries))


if __name__ == "__main__":
    main()
