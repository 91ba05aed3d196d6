"""Live progress of a GRPO run: one line per step as it ends, a bar with ETA, a bar per evaluation.

Lines go to stdout (they are the run's log: step, reward, EM, F1, searches, step time, ETA),
so a log file gets them as they happen; the bars go to stderr and are left out when
``progress`` is off. A step that made no update (every group's rewards equal, e.g. all
episodes invalid) says so on its line.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

if TYPE_CHECKING:
    from research_agents.grpo.config import GRPOConfig


def _clock(seconds: float) -> str:
    """``h:mm:ss`` / ``m:ss``.

    >>> _clock(75), _clock(3725)
    ('1:15', '1:02:05')
    """
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def step_line(step: int, total: int, metrics: dict[str, Any], eta_s: float | None) -> str:
    """The one line printed when a step ends.

    >>> step_line(3, 60, {"reward/mean": 0.5, "reward/em": 0.25, "reward/f1": 0.5,
    ...     "env/searches_per_episode": 1.0, "perf/step_s": 12.0, "time/elapsed_s": 36,
    ...     "grpo/updates": 1.0}, 684.0)
    'step    3/60  reward 0.500  EM 0.250  F1 0.500  searches 1.00  12.0 s/step  elapsed 0:36  ETA 11:24'
    """  # noqa: E501
    width = len(str(total))
    line = (
        f"step {step:{max(width, 4)}d}/{total}  reward {metrics.get('reward/mean', 0.0):.3f}"
        f"  EM {metrics.get('reward/em', 0.0):.3f}  F1 {metrics.get('reward/f1', 0.0):.3f}"
        f"  searches {metrics.get('env/searches_per_episode', 0.0):.2f}"
        f"  {metrics.get('perf/step_s', 0.0):.1f} s/step"
        f"  elapsed {_clock(float(metrics.get('time/elapsed_s', 0.0)))}"
    )
    if eta_s is not None:
        line += f"  ETA {_clock(eta_s)}"
    if "eval/em" in metrics:
        line += f"  | eval EM {metrics['eval/em']:.3f} F1 {metrics.get('eval/f1', 0.0):.3f}"
    if metrics.get("grpo/updates", 1.0) == 0:
        invalid = metrics.get("env/invalid", 0.0)
        why = f", {invalid:.0%} of episodes invalid" if invalid else ""
        line += f"  (no update: every group's rewards were equal{why})"
    return line


class StepProgress:
    """Prints :func:`step_line` after each step and keeps a bar over the run's steps.

    Args:
        config: The run's config (``steps``, ``time_budget_s``).
        start: The step the run starts (or resumes) at.
        elapsed_s: Training time already spent (resume).
        bar: Show the bar (stderr).
        active: ``False`` on ranks other than 0: print nothing.
    """

    def __init__(
        self,
        config: GRPOConfig,
        *,
        start: int = 0,
        elapsed_s: float = 0.0,
        bar: bool = True,
        active: bool = True,
    ) -> None:
        self.total = config.steps
        self.budget = config.time_budget_s
        self.start = start
        self.start_elapsed = elapsed_s
        self.active = active
        self.t0 = time.perf_counter()
        self.bar = tqdm(
            total=self.total,
            initial=start,
            desc="train",
            unit="step",
            file=sys.stderr,
            disable=not (bar and active),
            dynamic_ncols=True,
            leave=False,
        )

    def eta(self, step: int, elapsed_s: float) -> float | None:
        """Seconds left: the mean step time so far times the steps left, capped by the budget."""
        done = step - self.start
        if done <= 0:
            return None
        per_step = (time.perf_counter() - self.t0) / done
        left = per_step * (self.total - step)
        if self.budget is not None:
            left = min(left, max(self.budget - elapsed_s, 0.0))
        return left

    def step(self, step: int, metrics: dict[str, Any]) -> None:
        """Report the step that just ended."""
        if not self.active:
            return
        eta = self.eta(step, float(metrics.get("time/elapsed_s", 0.0)))
        line = step_line(step, self.total, metrics, eta)
        self.bar.set_postfix_str(
            f"reward {metrics.get('reward/mean', 0.0):.3f} EM {metrics.get('reward/em', 0.0):.3f}",
            refresh=False,
        )
        self.bar.update(1)
        tqdm.write(line, file=sys.stdout)
        sys.stdout.flush()

    def close(self) -> None:
        """Remove the bar."""
        self.bar.close()


@contextlib.contextmanager
def eval_bar(total: int, desc: str, enabled: bool = True) -> Iterator[Any]:
    """A bar over ``total`` evaluation questions (stderr); ``update(n)`` after each batch."""
    bar = tqdm(total=total, desc=desc, unit="q", file=sys.stderr, disable=not enabled, leave=False)
    try:
        yield bar
    finally:
        bar.close()
