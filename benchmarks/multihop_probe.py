"""Probe: how often does a policy search again on multi-hop questions, before any training?

Plays one batch of rollouts of the ``factbook-smollm2-multihop`` preset (no update) on N bridge
and N single-hop training questions, G samples each, and prints searches per episode, how the
episodes ended and the mean reward for each kind, then a few transcripts. This is how the
prompt and the middle-turn prefix of the recipe were chosen (docs/results.md)::

    python benchmarks/multihop_probe.py --template research_hops --turn_prefix "<" \
        --model runs/factbook-smollm2-multihop-stage1/checkpoint/model

``--template`` also takes the prompt variants of :data:`PROBE_PROMPTS`.

Any ``GRPOConfig`` field can be set with ``--set key=JSON`` (e.g. ``--set max_new_tokens=48``).

For bridge rollouts it also counts the step multi-hop needs: a query after the first that names
the bridge entity (``metadata["entities"][-1]``, e.g. Chile for "the currency of the country
whose capital is Santiago"), and an episode whose searches showed both supporting passages
(``support_recall`` 1.0).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import time

from research_env.builtin_prompts import HOPS_LAYOUT_SYSTEM

_QUERY = re.compile(r"<search>(.*?)</search>", re.DOTALL)

PROBE_PROMPTS: dict[str, dict[str, object]] = {"hops_layout": {"system_prompt": HOPS_LAYOUT_SYSTEM}}
"""Variants of ``research_hops``'s system prompt that this probe registers as templates:
``hops_layout`` shows the examples' results in the corpus's own layout (``Doc 1 (Title:
Country — Section — Field) ...``). The built-in ``research_hops_guided`` is ``hops_layout``
plus a sentence saying how a bridge question is searched."""


def names_bridge_entity(text: str, entity: str) -> bool:
    """Whether a query after the episode's first names ``entity`` (case-insensitive).

    >>> two = "<search> Santiago capital </search> ... <search> chile currency </search>"
    >>> names_bridge_entity(two, "Chile")
    True
    >>> names_bridge_entity("<search> Chile capital </search>", "Chile")
    False
    """
    return any(entity.lower() in q.lower() for q in _QUERY.findall(text)[1:])


def main(argv: list[str] | None = None) -> int:
    """Run the probe; print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--template", default="research_hops")
    parser.add_argument("--turn_prefix", default="<")
    parser.add_argument("--per-kind", type=int, default=4, help="questions of each kind")
    parser.add_argument("--group", type=int, default=3, help="samples per question")
    parser.add_argument("--show", type=int, default=8, help="transcripts to print")
    parser.add_argument("--set", action="append", default=[], help="FIELD=JSON")
    args = parser.parse_args(argv)

    from dataclasses import replace

    from research_agents.grpo.presets import get_preset
    from research_agents.grpo.trainer import GRPOTrainer

    import research_env.templates as templates
    from research_env.data.factbook.qa import SINGLE_HOP_TYPES

    for name, fields in PROBE_PROMPTS.items():
        base = templates.TEMPLATES["research_hops"]
        templates.TEMPLATES[name] = replace(base, name=name, **fields)  # type: ignore[arg-type]
    extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    n = 2 * args.per_kind
    cfg = get_preset("factbook-smollm2-multihop").replace(
        model=args.model,
        template=args.template,
        turn_prefix=args.turn_prefix,
        group_size=args.group,
        questions_per_step=n,
        mini_batch_size=n * args.group,
        curriculum=(),
        eval_size=0,
        dtype="auto",
        threads="auto",
        tensorboard=False,
        output_dir="runs/multihop-probe",
        **extra,
    )
    trainer = GRPOTrainer(cfg)
    examples = trainer.env.envs[0].examples
    by_type: dict[str, list[int]] = collections.defaultdict(list)
    for i, e in enumerate(examples):
        by_type[str(e.metadata.get("type"))].append(i)
    rng = random.Random(0)
    single = [i for t in SINGLE_HOP_TYPES if t != "capital_reverse" for i in by_type[t]]
    picked = rng.sample(by_type["bridge"], args.per_kind) + rng.sample(single, args.per_kind)
    trainer.sample_questions = lambda step: picked  # type: ignore[method-assign]
    start = time.perf_counter()
    trajs, _, _ = trainer.collect()
    print(f"{len(trajs)} rollouts in {time.perf_counter() - start:.0f} s ({cfg.model})")
    rows: dict[str, list[tuple[int, str, float]]] = collections.defaultdict(list)
    for t in trajs:
        kind = "bridge" if examples[t.question_index].metadata["type"] == "bridge" else "single"
        info = t.info
        rows[kind].append((int(info.get("num_searches", 0)), str(info.get("end_reason")), t.reward))
    print("| kind | searches per episode | distribution | ended | reward |")
    print("|---|---|---|---|---|")
    for kind, v in rows.items():
        searches = [x[0] for x in v]
        print(
            f"| {kind} | {sum(searches) / len(v):.2f} | {dict(collections.Counter(searches))} | "
            f"{dict(collections.Counter(x[1] for x in v))} | {sum(x[2] for x in v) / len(v):.3f} |"
        )
    bridge = [t for t in trajs if examples[t.question_index].metadata["type"] == "bridge"]
    named = sum(
        names_bridge_entity(
            trainer.tokenizer.decode(t.response_ids),
            examples[t.question_index].metadata["entities"][-1],
        )
        for t in bridge
    )
    both = sum((t.info.get("reward_components") or {}).get("support_recall") == 1.0 for t in bridge)
    print(
        f"\nbridge rollouts: {len(bridge)}; a later query names the bridge entity: {named}; "
        f"both supporting passages shown: {both}"
    )
    for t in bridge:  # what the policy searched for after the first result
        queries = [q.strip() for q in _QUERY.findall(trainer.tokenizer.decode(t.response_ids))]
        if len(queries) > 1:
            entity = examples[t.question_index].metadata["entities"][-1]
            print(f"  bridge entity {entity!r}: queries {queries}")
    for t in trajs[:: args.group][: args.show]:
        e = examples[t.question_index]
        print(f"\n== {e.question}  gold {e.golden_answers[:1]}  reward {t.reward:g}")
        print(trainer.tokenizer.decode(t.response_ids)[:1200])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
