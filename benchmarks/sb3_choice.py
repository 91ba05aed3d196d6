"""SB3 PPO on SearchQAChoiceEnv vs a uniform random choice, on held-out Factbook questions.

Trains SB3's PPO on the choice env over the Factbook train split for a time budget, then plays
every question of the evaluation split (test by default) once with the trained policy
(deterministic: the most likely slot) and ``--random-runs`` times with a uniform random choice
among the real candidates, with the same reset seeds (so the same candidate slots). Prints EM,
F1 and searches per question for both, overall and per question type, and writes them as JSON.

Run: ``.venv/bin/python benchmarks/sb3_choice.py`` (49,152 PPO steps: about 6 minutes on 2 busy
CPU cores once the embedding cache is warm; the first run also embeds ~6k texts);
``--timesteps 8192 --eval-limit 60`` for a quick look. Embeddings are kept between runs in the
research-env cache directory (``--no-disk-cache`` to start cold).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=49_152, help="PPO training steps")
    parser.add_argument(
        "--budget", type=float, default=None, help="stop training after this many seconds"
    )
    parser.add_argument("--policy", choices=["scorer", "mlp"], default="scorer")
    parser.add_argument("--types", default=None, help="comma-separated question types (all)")
    parser.add_argument("--num-candidates", type=int, default=16)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--eval-split", default="test")
    parser.add_argument("--eval-limit", type=int, default=None, help="first N eval questions")
    parser.add_argument("--random-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default="runs/sb3_choice/results.json")
    parser.add_argument(
        "--no-disk-cache", action="store_true", help="do not load or save embeddings on disk"
    )
    parser.add_argument(
        "--oracle", action="store_true", help="also count questions some choice path solves"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch
    from research_agents.eval.metrics import Summary, summarise
    from research_agents.sb3 import CachedEmbedder, ChoiceEnvConfig, SearchQAChoiceEnv
    from research_agents.sb3.embed import default_cache_path
    from research_agents.sb3.train import (
        PPOSettings,
        evaluate,
        ppo_chooser,
        random_chooser,
        train_ppo,
    )

    torch.set_num_threads(args.threads)
    types = tuple(args.types.split(",")) if args.types else None
    common = {
        "question_types": types,
        "num_candidates": args.num_candidates,
        "max_turns": args.max_turns,
    }
    train_cfg = ChoiceEnvConfig(split="train", **common)  # type: ignore[arg-type]
    eval_cfg = ChoiceEnvConfig(split=args.eval_split, **common)  # type: ignore[arg-type]
    cache_path = None if args.no_disk_cache else default_cache_path()
    embedder = CachedEmbedder(cache_size=400_000, path=cache_path)
    print(f"embedding cache: {len(embedder)} texts loaded from {cache_path}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}; torch threads: {args.threads}")

    settings = PPOSettings(
        total_timesteps=args.timesteps,
        time_budget_s=args.budget,
        policy=args.policy,
        seed=args.seed,
    )
    model, train_stats = train_ppo(train_cfg, settings, embedder, progress_every=10)
    misses_in_training = embedder.misses
    if cache_path is not None:
        embedder.save()
    print(
        f"trained PPO ({args.policy}) on {args.types or 'all'} train questions: "
        f"{train_stats['timesteps']} steps, {train_stats['episodes']} episodes in "
        f"{train_stats['seconds']:.0f} s; mean reward first/last 500 episodes: "
        f"{train_stats['reward_first']:.3f} -> {train_stats['reward_last']:.3f}; "
        f"{misses_in_training} texts embedded"
    )

    env = SearchQAChoiceEnv(eval_cfg, embedder=embedder)
    n = len(env.examples) if args.eval_limit is None else min(args.eval_limit, len(env.examples))
    indices = range(n)
    reachable = None
    if args.oracle:
        reachable = [solvable(env, i) for i in indices]
        print(f"oracle: {np.mean(reachable):.3f} of the {n} questions have a choice path to EM 1")
    t = time.perf_counter()
    ppo = summarise(evaluate(env, ppo_chooser(model), indices, seed=args.eval_seed))
    eval_seconds = time.perf_counter() - t
    randoms = [
        summarise(evaluate(env, random_chooser(args.seed + r), indices, seed=args.eval_seed))
        for r in range(args.random_runs)
    ]

    def value(s: Summary, key: str, type_: str | None = None) -> float:
        return float((s.by_type[type_][key] if type_ else s.metrics[key]) or 0.0)

    def mean_of(key: str, type_: str | None = None) -> float:
        vals = [value(s, key, type_) for s in randoms if type_ is None or type_ in s.by_type]
        return float(np.mean(vals))

    em_sd = float(np.std([value(s, "em") for s in randoms]))
    print(f"\nheld-out: {n} {args.eval_split} questions; eval seed {args.eval_seed}")
    print("| policy | EM | F1 | searches/q |")
    print("|---|---|---|---|")
    print(
        f"| PPO ({args.policy}, deterministic) | {value(ppo, 'em'):.3f} | "
        f"{value(ppo, 'f1'):.3f} | {value(ppo, 'searches'):.2f} |"
    )
    print(
        f"| uniform random ({args.random_runs} runs, EM sd {em_sd:.3f}) | "
        f"{mean_of('em'):.3f} | {mean_of('f1'):.3f} | {mean_of('searches'):.2f} |"
    )
    print("\n| type | n | EM PPO | EM random |")
    print("|---|---|---|---|")
    for type_, row in ppo.by_type.items():
        print(f"| {type_} | {row['n']:.0f} | {row['em']:.3f} | {mean_of('em', type_):.3f} |")
    print(
        f"\nevaluation of PPO took {eval_seconds:.0f} s; embedding cache "
        f"{embedder.hits} hits / {embedder.misses} misses"
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "train": train_stats,
                "n_eval": n,
                "oracle_reachable": None if reachable is None else float(np.mean(reachable)),
                "ppo": ppo.as_dict(),
                "random_runs": [s.as_dict() for s in randoms],
                "random_mean": {
                    "em": mean_of("em"),
                    "f1": mean_of("f1"),
                    "searches": mean_of("searches"),
                },
            },
            indent=1,
        )
    )
    if cache_path is not None:
        embedder.save()
    print(f"wrote {out}")


def solvable(env: object, index: int) -> bool:
    """Whether some sequence of choices answers question ``index`` exactly (golden answers used).

    Explores every search candidate of every turn (depth-first, at most ``max_turns - 1``
    searches) with the env's proposer, retriever and template, no embeddings.
    """
    from research_agents.baselines.readers import parse_result_block
    from research_agents.sb3 import ProposalState, SearchQAChoiceEnv

    from research_env.rewards import exact_match

    assert isinstance(env, SearchQAChoiceEnv)
    inner, example = env.inner, env.examples[index]
    max_turns = env.config.max_turns

    def search(state: ProposalState) -> bool:
        candidates = env.proposer.propose(state)
        if any(
            c.kind == "answer" and exact_match(c.text, example.golden_answers) for c in candidates
        ):
            return True
        if state.last_turn:
            return False
        for c in candidates:
            if c.kind != "search":
                continue
            shown = inner.template.format_observation(inner.retriever.search(c.text, inner.top_k))
            after = ProposalState(
                question=state.question,
                queries=(*state.queries, c.text),
                results=(*state.results, tuple(parse_result_block(shown))),
                turn=state.turn + 1,
                max_turns=max_turns,
            )
            if search(after):
                return True
        return False

    return search(ProposalState(question=example.question, max_turns=max_turns))


if __name__ == "__main__":
    main()
