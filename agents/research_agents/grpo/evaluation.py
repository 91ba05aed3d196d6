"""Greedy evaluation of a policy on held-out questions, through the same rollout code."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from research_agents.generation.base import Generator, SamplingParams
from research_agents.grpo.rollout import Trajectory, rollout
from research_env.settings import TurnSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_env.data.types import QAExample
    from research_env.records import EpisodeRecord
    from research_env.vector import SearchQAVectorEnv


def stratified_subset(examples: Sequence[QAExample], size: int, seed: int = 0) -> list[int]:
    """``size`` question indices spread evenly over question types (all when ``size`` is 0).

    Deterministic for a given ``seed``; indices come back sorted.
    """
    if size <= 0 or size >= len(examples):
        return list(range(len(examples)))
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_type[str(e.metadata.get("type", "?"))].append(i)
    rng = np.random.default_rng(seed)
    pools = {t: list(rng.permutation(ix)) for t, ix in sorted(by_type.items())}
    chosen: list[int] = []
    while len(chosen) < size:
        for t in pools:
            if pools[t] and len(chosen) < size:
                chosen.append(int(pools[t].pop()))
    return sorted(chosen)


def evaluate_policy(
    vec: SearchQAVectorEnv,
    generator: Generator,
    tokenizer: PreTrainedTokenizerBase,
    indices: Sequence[int],
    *,
    stop: tuple[str, ...],
    turns: TurnSettings,
    on_chunk: Callable[[int], object] | None = None,
) -> list[EpisodeRecord]:
    """Play each question once with greedy decoding; one record per question, in order.

    ``eval.metrics.summarise`` turns the records into means, intervals and per-type EM. Each
    record's ``log`` holds one ``["response", text]`` pair: the episode after the prompt as
    played (forced prefixes, sampled text and observations). ``turns`` gives the token budgets
    and forced prefixes (its sampling fields are not used: decoding is greedy). ``on_chunk(n)``
    is called after each batch of ``n`` questions (a progress bar's update).
    """
    params = SamplingParams(max_new_tokens=turns.max_new_tokens, temperature=0.0, stop=stop)
    trajs: list[Trajectory] = []
    for start in range(0, len(indices), vec.num_envs):
        chunk = indices[start : start + vec.num_envs]
        out, _ = rollout(
            vec,
            generator,
            tokenizer,
            chunk,
            params,
            response_prefix=turns.response_prefix,
            turn_prefix=turns.turn_prefix,
            final_prefix=turns.final_prefix,
            answer_continuation=turns.answer_continuation,
            max_response_tokens=turns.max_response_tokens,
        )
        trajs.extend(out)
        if on_chunk is not None:
            on_chunk(len(out))
    examples = vec.envs[0].examples
    records = []
    for t in trajs:
        record = t.record(examples[t.question_index])
        text = tokenizer.decode(t.response_ids, skip_special_tokens=True)
        record.log = [["response", str(text)]]
        records.append(record)
    return records
