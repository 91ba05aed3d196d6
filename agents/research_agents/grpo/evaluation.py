"""Greedy evaluation of a policy on held-out questions, through the same rollout code."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from research_agents.generation.base import Generator, SamplingParams
from research_agents.grpo.rollout import Trajectory, rollout
from research_env.settings import TurnSettings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from research_env.data.types import QAExample
    from research_env.vector import SearchQAVectorEnv


@dataclass
class EvalResult:
    """Held-out metrics of one policy."""

    n: int
    em: float
    f1: float
    format_ok: float
    searches: float
    answer_in_retrieval: float
    by_type: dict[str, dict[str, float]] = field(default_factory=dict)
    """Question type -> {"n", "em", "f1"}."""
    records: list[dict[str, Any]] = field(default_factory=list)
    """One record per question: id, type, prediction, golds, em, f1, searches, tokens (and,
    from :func:`evaluate_policy`, the ``response`` text after the prompt)."""

    def as_metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """Flat metrics for logging (``eval/em``, ``eval/em_capital``, ...)."""
        out = {
            f"{prefix}em": self.em,
            f"{prefix}f1": self.f1,
            f"{prefix}format_ok": self.format_ok,
            f"{prefix}searches": self.searches,
            f"{prefix}answer_in_retrieval": self.answer_in_retrieval,
        }
        for t, m in self.by_type.items():
            out[f"{prefix}em_{t}"] = m["em"]
        return out


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


def summarise(trajs: Sequence[Trajectory], examples: Sequence[QAExample]) -> EvalResult:
    """Aggregate finished trajectories into an :class:`EvalResult`."""
    records: list[dict[str, Any]] = []
    for t in trajs:
        ex = examples[t.question_index]
        rc = t.info.get("reward_components", {})
        records.append(
            {
                "id": ex.id,
                "type": ex.metadata.get("type", "?"),
                "question": ex.question,
                "golden_answers": list(ex.golden_answers),
                "prediction": t.info.get("prediction"),
                "em": float(rc.get("em", 0.0)),
                "f1": float(rc.get("f1", 0.0)),
                "format_ok": float(bool(rc.get("format_ok", False))),
                "answer_in_retrieval": float(bool(rc.get("answer_in_retrieval", False))),
                "searches": int(t.info.get("num_searches", 0)),
                "generated_tokens": t.num_generated,
                "end_reason": t.info.get("end_reason", "token_budget" if t.truncated else None),
            }
        )

    def mean(key: str, rows: Sequence[dict[str, Any]] = records) -> float:
        return sum(float(r[key]) for r in rows) / max(len(rows), 1)

    by_type: dict[str, dict[str, float]] = {}
    for typ in sorted({r["type"] for r in records}):
        rows = [r for r in records if r["type"] == typ]
        by_type[typ] = {"n": float(len(rows)), "em": mean("em", rows), "f1": mean("f1", rows)}
    return EvalResult(
        n=len(records),
        em=mean("em"),
        f1=mean("f1"),
        format_ok=mean("format_ok"),
        searches=mean("searches"),
        answer_in_retrieval=mean("answer_in_retrieval"),
        by_type=by_type,
        records=records,
    )


def evaluate_policy(
    vec: SearchQAVectorEnv,
    generator: Generator,
    tokenizer: PreTrainedTokenizerBase,
    indices: Sequence[int],
    *,
    stop: tuple[str, ...],
    turns: TurnSettings,
    on_chunk: Callable[[int], object] | None = None,
) -> EvalResult:
    """Play each question once with greedy decoding and summarise EM / F1 / behaviour.

    ``turns`` gives the token budgets and forced prefixes (its sampling fields are not used:
    decoding is greedy). ``on_chunk(n)`` is called after each batch of ``n`` questions (a
    progress bar's update).
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
            max_response_tokens=turns.max_response_tokens,
        )
        trajs.extend(out)
        if on_chunk is not None:
            on_chunk(len(out))
    result = summarise(trajs, vec.envs[0].examples)
    for record, t in zip(result.records, trajs, strict=True):
        # the episode after the prompt: forced, sampled and observation text, as played
        record["response"] = tokenizer.decode(t.response_ids, skip_special_tokens=True)
    return result
