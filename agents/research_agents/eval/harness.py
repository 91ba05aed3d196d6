"""Run an agent over a suite: records, metrics with confidence intervals, and a fingerprint.

:func:`run_suite` plays every question of every task of a :class:`Suite` once, batched through
a :class:`~research_env.vector.SearchQAVectorEnv` (one retrieval call per round for all
episodes in flight) with a progress bar, and returns a :class:`SuiteResult`: per task, the
per-question records and their :class:`~research_agents.eval.metrics.Summary`; for the run,
the protocol (what must match for results to be compared) with its hash, and the provenance
(which agent, model and code produced it).

Everything in a result is deterministic for a given suite and agent except ``timing`` (dates,
seconds, throughput), which :meth:`SuiteResult.comparable` leaves out.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_agents.eval.agents import LoadedAgent, load_agent
from research_agents.eval.fingerprint import (
    PROTOCOL_VERSION,
    dataset_fingerprint,
    generation_fingerprint,
    git_commit,
    package_versions,
    parser_fingerprint,
    protocol_hash,
    retriever_identity,
    scoring_fingerprint,
    template_fingerprint,
)
from research_agents.eval.metrics import METRICS_VERSION, Summary, summarise
from research_agents.eval.suites import Entry, Suite, Task, select_questions
from research_env.agent import Agent, EpisodeRecord, play
from research_env.data.types import QAExample
from research_env.env import SearchQAEnv

if TYPE_CHECKING:
    from research_agents.eval.judge import LLMJudge
    from research_env.vector import SearchQAVectorEnv

__all__ = [
    "RESULT_FORMAT",
    "SuiteResult",
    "TaskResult",
    "run_suite",
    "suite_protocol",
    "task_protocol",
]

RESULT_FORMAT = "research-env/eval-result"
RESULT_VERSION = 1


# ------------------------------------------------------------------------------ protocol
def task_protocol(
    suite: Suite,
    task: Task,
    env: SearchQAEnv,
    questions: Sequence[QAExample],
    judge: LLMJudge | None = None,
) -> dict[str, Any]:
    """The protocol of one task: everything that must match for its results to be compared.

    Args:
        suite: The suite (env and generation settings, seed).
        task: The task.
        env: An env built with the suite's settings on the task's data (its retriever and
            template are fingerprinted).
        questions: The questions asked, in order.
        judge: The LLM judge, if one runs.
    """
    return {
        "version": PROTOCOL_VERSION,
        "dataset": {
            "name": task.name,
            "split": task.split,
            "n": len(questions),
            "content_hash": dataset_fingerprint(questions),
            "selection": {"size": task.size, "seed": suite.seed, "method": "stratified_by_type"},
        },
        "retriever": retriever_identity(
            env.retriever, extra_queries=[q.question for q in questions[:4]]
        ),
        "env": {
            "top_k": env.top_k,
            "max_turns": env.max_turns,
            "last_turn": env.last_turn,
            "invalid_action": env.invalid_action,
            "max_query_chars": env.max_query_chars,
            "parser_hash": parser_fingerprint(),
            # Only the paper protocols are named, so the hashes of earlier results still hold.
            **({"protocol": env.protocol.source} if env.protocol.name != "ours" else {}),
        },
        "template": template_fingerprint(env.template),
        "scoring": scoring_fingerprint(suite.env.resolved().reward or "em"),
        "generation": generation_fingerprint(suite.generation),
        "seed": suite.seed,
        "metrics_version": METRICS_VERSION,
        "judge": None if judge is None else judge.config.protocol(),
    }


def _make_env(suite: Suite, task: Task, tokenizer: Any | None, num_envs: int) -> SearchQAVectorEnv:
    from research_env.vector import SearchQAVectorEnv

    return SearchQAVectorEnv(
        num_envs,
        dataset=task.env_dataset(),
        split=task.split,
        tokenizer=tokenizer,
        **suite.env.env_kwargs(),
    )


def suite_protocol(suite: Suite, judge: LLMJudge | None = None) -> tuple[dict[str, Any], str]:
    """The protocol of a whole suite and its hash, without running any agent.

    The protocol does not depend on the agent, so it can be computed before loading a model
    (``searchqa leaderboard --skip-existing`` does).
    """
    tasks: dict[str, Any] = {}
    for task in suite.tasks:
        env = SearchQAEnv(dataset=task.env_dataset(), split=task.split, **suite.env.env_kwargs())
        indices = select_questions(env.examples, task, suite.seed)
        tasks[task.name] = task_protocol(
            suite, task, env, [env.examples[i] for i in indices], judge
        )
    protocol = {"tasks": tasks}
    return protocol, protocol_hash(protocol)


# ------------------------------------------------------------------------------ results
@dataclass
class TaskResult:
    """One task's outcome."""

    task: str
    protocol_hash: str
    summary: Summary
    records: list[dict[str, Any]] = field(default_factory=list)
    """One ``EpisodeRecord.as_dict()`` per question (plus ``task`` and, with a judge,
    ``judge``); written to JSONL, not into the result JSON."""


@dataclass
class SuiteResult:
    """One agent on one suite: metrics per task, protocol, provenance and timing."""

    suite: str
    label: str
    slug: str
    protocol: dict[str, Any]
    protocol_hash: str
    provenance: dict[str, Any]
    tasks: dict[str, TaskResult]
    timing: dict[str, Any] = field(default_factory=dict)
    """Dates, seconds and throughput: the only fields that differ between identical runs."""
    description: str = ""
    """The suite's one-line description."""

    def to_json(self) -> dict[str, Any]:
        """The stored form (``benchmarks/results/<suite>/<slug>.json``)."""
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "suite": self.suite,
            "description": self.description,
            "label": self.label,
            "slug": self.slug,
            "protocol_hash": self.protocol_hash,
            "results": {
                name: {"protocol_hash": t.protocol_hash, **t.summary.as_dict()}
                for name, t in self.tasks.items()
            },
            "protocol": self.protocol,
            "provenance": self.provenance,
            "timing": self.timing,
        }

    def comparable(self) -> dict[str, Any]:
        """:meth:`to_json` without ``timing``: equal for two runs of the same agent and suite."""
        data = self.to_json()
        del data["timing"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "result") -> SuiteResult:
        """Read the stored form.

        Raises:
            ValueError: If ``data`` is not a result of a known version (naming ``where``).
        """
        if data.get("format") != RESULT_FORMAT:
            raise ValueError(f"{where}: not an eval result (expected format {RESULT_FORMAT!r})")
        if data.get("version") != RESULT_VERSION:
            raise ValueError(
                f"{where}: expected result version {RESULT_VERSION}, got {data.get('version')!r}"
            )
        try:
            tasks = {
                name: TaskResult(name, str(r["protocol_hash"]), Summary.from_dict(r))
                for name, r in data["results"].items()
            }
            return cls(
                suite=str(data["suite"]),
                label=str(data["label"]),
                slug=str(data["slug"]),
                protocol=dict(data["protocol"]),
                protocol_hash=str(data["protocol_hash"]),
                provenance=dict(data["provenance"]),
                tasks=tasks,
                timing=dict(data.get("timing", {})),
                description=str(data.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: malformed result ({type(e).__name__}: {e})") from e

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (pretty, keys in a fixed order)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")
        return out

    def write_records(self, path: str | Path) -> Path:
        """Write every task's per-question records to one JSONL file."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for task in self.tasks.values():
                for record in task.records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return out


# ------------------------------------------------------------------------------ running
class _FixedAgent(LoadedAgent):
    """A ready agent object passed straight to :func:`run_suite`."""

    def __init__(self, agent: Agent) -> None:
        super().__init__(Entry("user", label=agent.name), None, {"agent_kind": "user"})
        self._agent = agent

    def bind(self, env: SearchQAEnv) -> Agent:
        return self._agent


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]

    return tqdm(total=total, desc=desc, unit="q", disable=not enabled, file=sys.stderr)


def run_suite(
    suite: Suite,
    agent: Entry | LoadedAgent | Agent,
    *,
    batch_size: int = 16,
    judge: LLMJudge | None = None,
    progress: bool = True,
) -> SuiteResult:
    """Play ``agent`` on every question of ``suite`` and summarise.

    Args:
        suite: The suite.
        agent: An :class:`Entry` (loaded here), a :class:`LoadedAgent`, or any
            :class:`~research_env.agent.Agent` object.
        batch_size: Episodes in flight at once (sub-envs of the vector env; the LLM batch).
        judge: An LLM judge to ask about every answer (off by default).
        progress: Show a progress bar per task.

    Returns:
        The result, with per-question records.
    """
    if isinstance(agent, Entry):
        loaded = load_agent(
            agent, suite.generation, suite.env, seed=suite.seed, batch_size=batch_size
        )
    elif isinstance(agent, LoadedAgent):
        loaded = agent
    else:
        loaded = _FixedAgent(agent)
    started = datetime.now(timezone.utc)
    wall = time.perf_counter()
    tasks: dict[str, TaskResult] = {}
    protocols: dict[str, Any] = {}
    timing: dict[str, Any] = {"started_at": started.isoformat(timespec="seconds"), "tasks": {}}
    agent_name = ""
    for task in suite.tasks:
        vec = _make_env(suite, task, loaded.tokenizer, batch_size)
        examples = vec.envs[0].examples
        indices = select_questions(examples, task, suite.seed)
        protocol = task_protocol(suite, task, vec.envs[0], [examples[i] for i in indices], judge)
        protocols[task.name] = protocol
        player = loaded.bind(vec.envs[0])
        agent_name = player.name
        bar = _progress(len(indices), f"{loaded.entry.display()} · {task.name}", progress)
        ems: list[float] = []

        def on_episode(record: EpisodeRecord, bar: Any = bar, ems: list[float] = ems) -> None:
            ems.append(record.em)
            bar.update(1)
            bar.set_postfix(EM=f"{sum(ems) / len(ems):.3f}", refresh=False)

        t0 = time.perf_counter()
        played = play(player, vec, indices, seed=suite.seed, on_episode=on_episode)
        seconds = time.perf_counter() - t0
        bar.close()
        records = [{"task": task.name, **r.as_dict()} for r in played]
        if judge is not None:
            verdicts = judge.judge_records(records)
            for record, verdict in zip(records, verdicts):
                record["judge"] = verdict
        summary = summarise(records, seed=suite.seed)
        tasks[task.name] = TaskResult(task.name, protocol_hash(protocol), summary, records)
        tokens = summary.metrics.get("tokens")
        timing["tasks"][task.name] = {
            "seconds": round(seconds, 2),
            "questions_per_s": round(len(records) / max(seconds, 1e-9), 3),
            "generated_tokens_per_s": (
                None if tokens is None else round(tokens * len(records) / max(seconds, 1e-9), 2)
            ),
        }
    timing["seconds"] = round(time.perf_counter() - wall, 2)
    protocol = {"tasks": protocols}
    provenance = {
        "label": loaded.entry.display(),
        "agent_name": agent_name,
        **loaded.provenance,
        "retriever_spec": (
            suite.env.retriever
            if isinstance(suite.env.retriever, str)
            else type(suite.env.retriever).__name__
        ),
        "batch_size": batch_size,
        "git_commit": git_commit(),
        "versions": package_versions(),
    }
    return SuiteResult(
        suite=suite.name,
        label=loaded.entry.display(),
        slug=loaded.entry.slug(),
        protocol=protocol,
        protocol_hash=protocol_hash(protocol),
        provenance=provenance,
        tasks=tasks,
        timing=timing,
        description=suite.description,
    )
