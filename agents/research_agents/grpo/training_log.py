"""Per-step episode metrics, and their sinks: JSONL (always), TensorBoard and W&B (optional)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_agents.grpo.advantages import zero_variance_share

if TYPE_CHECKING:
    from research_agents.grpo.rollout import Trajectory


def episode_columns(
    trajs: Sequence[Trajectory], advantages: Sequence[float]
) -> dict[str, list[float]]:
    """One column per logged episode statistic, one row per trajectory.

    Columns (rather than the trajectories) are what ranks exchange: they are small, and
    concatenated in rank order they are exactly the columns of the whole batch.
    """
    records = [t.record() for t in trajs]
    return {
        "reward": [t.reward for t in trajs],
        "group": [float(t.group_id) for t in trajs],
        "adv_abs": [abs(float(a)) for a in advantages],
        "em": [r.em for r in records],
        "f1": [r.f1 for r in records],
        "format_ok": [float(r.format_ok) for r in records],
        "answer_in_retrieval": [float(r.answer_in_retrieval) for r in records],
        # 0 for questions that list no supporting passages (only the Factbook world does).
        "support_recall": [r.support_recall or 0.0 for r in records],
        # env/bridge_recall averages over the episodes whose question hides an entity.
        "bridge_recall": [r.bridge_recall or 0.0 for r in records],
        "hides_entity": [float(r.bridge_recall is not None) for r in records],
        "searches": [float(r.searches) for r in records],
        # env/searches_one_hop and _multi_hop average over the questions with that many hops.
        "one_hop": [float(r.hops == 1) for r in records],
        "multi_hop": [float((r.hops or 0) >= 2) for r in records],
        "invalid_actions": [float(r.invalid_actions) for r in records],
        "answered": [float(r.end_reason == "answer") for r in records],
        "invalid": [float(r.end_reason == "invalid") for r in records],
        "truncated": [float(t.truncated) for t in trajs],
        "retrieval_failed": [float(t.retrieval_failed) for t in trajs],
        "turns": [float(t.turns) for t in trajs],
        "response_tokens": [float(len(t.response_ids)) for t in trajs],
        "generated_tokens": [float(t.num_generated) for t in trajs],
    }


def episode_metrics(columns: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The ``reward/*``, ``env/*`` and group metrics of a batch from :func:`episode_columns`."""

    def mean(name: str) -> float:
        values = columns[name]
        return sum(values) / max(len(values), 1)

    rewards = list(columns["reward"])
    n = len(rewards)
    reward_mean = mean("reward")
    var = sum((r - reward_mean) ** 2 for r in rewards) / max(n, 1)
    return {
        "reward/mean": reward_mean,
        "reward/std": math.sqrt(var),
        "reward/em": mean("em"),
        "reward/f1": mean("f1"),
        "grpo/zero_variance_groups": zero_variance_share(
            rewards, [int(g) for g in columns["group"]]
        ),
        "grpo/adv_abs_mean": mean("adv_abs"),
        "env/searches_per_episode": mean("searches"),
        "env/searches_one_hop": _mean_where(columns["searches"], columns["one_hop"]),
        "env/searches_multi_hop": _mean_where(columns["searches"], columns["multi_hop"]),
        "env/invalid_actions": mean("invalid_actions"),
        "env/format_ok": mean("format_ok"),
        "env/answer_in_retrieval": mean("answer_in_retrieval"),
        "env/support_recall": mean("support_recall"),
        "env/bridge_recall": sum(columns["bridge_recall"]) / max(sum(columns["hides_entity"]), 1),
        "env/answered": mean("answered"),
        "env/invalid": mean("invalid"),
        "env/truncated": mean("truncated"),
        "env/retrieval_failed": mean("retrieval_failed"),
        "env/turns": mean("turns"),
        "env/response_tokens": mean("response_tokens"),
        "env/generated_tokens": mean("generated_tokens"),
        "train/episodes": float(n),
    }


def _mean_where(values: Sequence[float], where: Sequence[float]) -> float:
    """The mean of ``values`` where ``where`` is 1 (0.0 where it never is).

    >>> _mean_where([1.0, 2.0, 4.0], [1.0, 0.0, 1.0])
    2.5
    >>> _mean_where([1.0], [0.0])
    0.0
    """
    total = sum(w for w in where)
    return sum(v * w for v, w in zip(values, where, strict=True)) / total if total else 0.0


class MetricsLogger:
    """Write one JSON object per step to ``metrics.jsonl``, mirrored to TensorBoard / W&B.

    Args:
        output_dir: Run folder; ``metrics.jsonl`` and ``tensorboard/`` go there.
        tensorboard: Also write TensorBoard event files.
        wandb_project: Also log to this W&B project (``wandb`` must be installed).
        resume_step: When resuming, lines of steps after this one are dropped first, so the
            file reads as one uninterrupted run.
        config: Stored with the W&B run.
        active: ``False`` makes every method a no-op (the non-main ranks of a distributed run,
            so only rank 0 writes).
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        resume_step: int | None = None,
        config: dict[str, Any] | None = None,
        active: bool = True,
    ) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.active = active
        self._tb: Any = None
        self._wandb: Any = None
        if not active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [line for step, line in _numbered_lines(self.path) if step <= resume_step]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        if wandb_project:
            import wandb  # type: ignore[import-not-found]

            self._wandb = wandb.init(project=wandb_project, config=config or {})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` for ``step`` (non-finite floats are written as ``null``)."""
        if not self.active:
            return
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()
        }
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        numeric = {
            k: float(v) for k, v in clean.items() if isinstance(v, int | float) and v is not None
        }
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)

    def close(self) -> None:
        """Flush and close the sinks."""
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _numbered_lines(path: Path) -> list[tuple[int, str]]:
    """``(step, line)`` of each record of ``metrics.jsonl``, for a resume to cut back.

    A last line without its newline that is not valid JSON was being written when the run was
    killed: it is dropped with a warning (its step is re-run). Any other bad line is an error.

    Raises:
        CheckpointError: On a malformed line other than an unfinished last one (file:line).
    """
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    out: list[tuple[int, str]] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step = record["step"]
            if isinstance(step, bool) or not isinstance(step, int):
                raise TypeError(f"'step' is {step!r}")
        except (ValueError, KeyError, TypeError) as e:
            if i == len(lines):  # no newline after it: the line a kill cut short
                print(
                    f"warning: {path}:{i}: dropped an unfinished last line (a kill cut it short)",
                    file=sys.stderr,
                )
                break
            from research_agents.grpo.checkpoint import CheckpointError

            raise CheckpointError(f"{path}:{i}: not a metrics record ({e})") from None
        out.append((step, line))
    return out


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file back.

    A run still writing it may be read: an unfinished last line is left out.
    """
    text = Path(path).read_text()
    lines = text.split("\n")
    if lines and lines[-1].strip():  # no newline yet: still being written
        try:
            json.loads(lines[-1])
        except ValueError:
            lines.pop()
    return [json.loads(line) for line in lines if line.strip()]
