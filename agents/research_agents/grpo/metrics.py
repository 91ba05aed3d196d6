"""Metrics sinks: a JSONL file (always), TensorBoard and Weights & Biases (optional)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Write one JSON object per step to ``metrics.jsonl``, mirrored to TensorBoard / W&B.

    Args:
        output_dir: Run folder; ``metrics.jsonl`` and ``tensorboard/`` go there.
        tensorboard: Also write TensorBoard event files.
        wandb_project: Also log to this W&B project (``wandb`` must be installed).
        resume_step: When resuming, lines of steps after this one are dropped first, so the
            file reads as one uninterrupted run.
        config: Stored with the W&B run.
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        tensorboard: bool = True,
        wandb_project: str | None = None,
        resume_step: int | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(f"{line}\n" for line in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._tb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        self._wandb: Any = None
        if wandb_project:
            import wandb  # type: ignore[import-not-found]

            self._wandb = wandb.init(project=wandb_project, config=config or {})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` for ``step`` (non-finite floats are written as ``null``)."""
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


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file back."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
