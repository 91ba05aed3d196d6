"""Data-parallel GRPO over several processes (``torchrun`` / ``accelerate launch``).

Both launchers start one process per device and set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and joins the process
group (NCCL when CUDA is available, gloo on CPU). Without them (``WORLD_SIZE`` unset or 1) every
method of :class:`Dist` is a no-op and the trainer runs exactly as a single process.

How one GRPO step is shared between ``W`` ranks:

* Every rank draws the same ``B`` questions (a pure function of seed and step) and plays a
  contiguous share of whole groups (:meth:`Dist.share`), so group-normalised advantages are
  computed locally and exactly.
* Which trajectories form each mini-batch is decided over the global batch: the ranks exchange
  each kept trajectory's token count, draw the same permutation, and each rank back-propagates
  its own members of a mini-batch with the *global* token and sequence counts as the loss
  normaliser. Summing the gradients (:meth:`Dist.all_reduce_grads`, one all-reduce per
  optimiser step) then gives the gradient of the single-process loss over the union batch, up to
  float summation order. Clipping and the optimiser step are identical everywhere, so the
  replicas stay equal.
* This is DDP's algorithm (replicated model, summed gradients) written out rather than through
  ``torch.nn.parallel.DistributedDataParallel``: ranks run different numbers of micro-batches
  (trajectories differ in length), the loss normaliser is global, and the policy is scored
  through its decoder and LM head separately (``grpo/policy.py``), none of which the wrapper
  handles without ``join()`` and extra scaling.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch

T = TypeVar("T")

GRAD_BUCKET_NUMEL = 2**24
"""Gradient elements all-reduced per call (64 MiB of float32): bounds the extra memory."""


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}: expected an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run, and the collectives the trainer needs.

    Construct it with :func:`init_distributed`; the default is a single process.
    """

    rank: int = 0
    """Global rank (0 is the main process: it logs, plots and writes checkpoints)."""

    world_size: int = 1
    """Number of processes."""

    local_rank: int = 0
    """Rank on this machine (selects the GPU)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    """Where this rank's policy lives: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU."""

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def share(self, n: int) -> range:
        """This rank's contiguous share of ``n`` items (shares differ in size by at most one).

        >>> [list(Dist(rank=r, world_size=3).share(7)) for r in range(3)]
        [[0, 1], [2, 3], [4, 5, 6]]
        """
        return range(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def concat(self, columns: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
        """Concatenate each column over the ranks, in rank order."""
        parts = self.gather({k: list(v) for k, v in columns.items()})
        return {k: [x for part in parts for x in part[k]] for k in columns}

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over the ranks (float64)."""
        return self._reduce(values, torch.distributed.ReduceOp.SUM)

    def all_max(self, values: Sequence[float]) -> list[float]:
        """Element-wise maxima of ``values`` over the ranks."""
        return self._reduce(values, torch.distributed.ReduceOp.MAX)

    def _reduce(self, values: Sequence[float], op: Any) -> list[float]:
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=op)
        return [float(v) for v in t.tolist()]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box: list[Any] = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.enabled:
            torch.distributed.barrier()

    def broadcast_parameters(self, params: Iterable[torch.Tensor]) -> None:
        """Overwrite ``params`` with rank 0's values (so every replica starts equal)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for p in params:
                torch.distributed.broadcast(p.data, src=0)

    def all_reduce_grads(self, params: Sequence[torch.Tensor]) -> None:
        """Sum the gradients of ``params`` over the ranks, in place.

        A rank that had nothing to back-propagate contributes zeros; afterwards every
        parameter has a gradient on every rank, the same one.
        """
        if not self.enabled:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.Tensor] = []
        size = 0
        for p in params:
            assert p.grad is not None
            bucket.append(p.grad)
            size += p.numel()
            if size >= GRAD_BUCKET_NUMEL:
                _all_reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            _all_reduce_bucket(bucket)


def _all_reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(chunk.view_as(g))


def init_distributed(
    env: Mapping[str, str] | None = None, timeout: timedelta = timedelta(minutes=30)
) -> Dist:
    """Join the process group described by the launcher's environment variables.

    Args:
        env: The environment (default ``os.environ``): ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``;
            ``MASTER_ADDR`` / ``MASTER_PORT`` are read by torch itself.
        timeout: How long a collective waits for the other ranks (rank 0 alone runs
            evaluations and writes checkpoints, so the others may wait that long).

    Returns:
        This process's :class:`Dist` (a single process when ``WORLD_SIZE`` is unset or 1).

    Raises:
        ValueError: If the variables are malformed or inconsistent.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    if world < 1:
        raise ValueError(f"environment variable WORLD_SIZE: expected >= 1, got {world}")
    if not 0 <= rank < world:
        raise ValueError(f"environment variable RANK: expected 0..{world - 1}, got {rank}")
    cuda = torch.cuda.is_available()
    if cuda and not 0 <= local_rank < torch.cuda.device_count():
        raise ValueError(
            f"environment variable LOCAL_RANK={local_rank}: only "
            f"{torch.cuda.device_count()} CUDA device(s) visible"
        )
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return Dist(device=device)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(name):
            raise ValueError(
                f"WORLD_SIZE={world} but environment variable {name} is not set: start the run "
                "with torchrun or accelerate launch"
            )
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend="nccl" if cuda else "gloo",
            rank=rank,
            world_size=world,
            timeout=timeout,
            device_id=device if cuda else None,
        )
        atexit.register(_destroy)
    elif torch.distributed.get_world_size() != world:
        raise ValueError(
            f"WORLD_SIZE={world} but the existing process group has "
            f"{torch.distributed.get_world_size()} ranks"
        )
    return Dist(rank=rank, world_size=world, local_rank=local_rank, device=device)


def _destroy() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
