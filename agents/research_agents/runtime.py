"""Where and how the policy runs: device, compute dtype and CPU threads, chosen by measurement.

* :func:`resolve_device` — ``"auto"`` is the CUDA device when one is visible, else the CPU.
* :func:`resolve_dtype` — ``"auto"`` is bfloat16 where the hardware runs it natively (a CUDA
  device with bf16 support; a CPU with AVX512-BF16 or AMX), float32 elsewhere.
* :func:`resolve_threads` — ``"auto"`` times a short matmul probe with 1 and with 2 threads
  (the shapes of a SmolLM2 decode step and of a training micro-batch) once per machine, keeps
  the faster count in ``$RESEARCH_ENV_CACHE/runtime/threads.json`` and reuses it afterwards.
  On a 2-core machine shared with other jobs one thread is often several times faster than two
  for decode-sized matmuls: every OpenMP region waits for its slowest thread.
* :func:`apply_threads` — sets the count for torch, and for numba and faiss when they are loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")
"""Accepted compute-dtype names."""

THREAD_CANDIDATES = (1, 2)
"""Thread counts the ``"auto"`` probe compares (capped at the CPUs this process may use)."""


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 matmul instructions (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → ``cuda`` when available, else ``cpu``; anything else as ``torch.device``.

    Raises:
        ValueError: For an unknown device string, or ``cuda`` where none is visible.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: expected auto, cpu or cuda[:N], got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but no CUDA device is visible")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device | str = "cpu") -> torch.dtype:
    """The compute dtype named ``dtype`` on ``device``; ``"auto"`` picks bf16 where native.

    Raises:
        ValueError: For a name outside :data:`DTYPES`.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)  # type: ignore[no-any-return]
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if dev.type == "cpu" and cpu_has_bf16() else torch.float32


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_key() -> str:
    """What the cached thread choice is valid for: CPU model, usable CPUs, torch version."""
    import torch

    model = platform.processor() or platform.machine()
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return f"{model} | {_usable_cpus()} cpus | torch {torch.__version__}"


def _time_probe(threads: int, dtype: torch.dtype, repeats: int = 5) -> float:
    """Seconds of the probe with ``threads`` threads: best of ``repeats`` rounds.

    One round is a decode-sized matmul (32 × 576 @ 576 × 1536, SmolLM2's MLP at batch 32) ten
    times and a training-sized one (1024 × 576 @ 576 × 1536) once: about equal FLOPs of each.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(576, 1536, generator=gen).to(dtype)
        small = torch.randn(32, 576, generator=gen).to(dtype)
        big = torch.randn(1024, 576, generator=gen).to(dtype)
        best = float("inf")
        for r in range(repeats + 1):
            t0 = time.perf_counter()
            for _ in range(10):
                small @ w
            big @ w
            if r:  # the first round warms up
                best = min(best, time.perf_counter() - t0)
        return best
    finally:
        torch.set_num_threads(before)


def measure_threads(
    candidates: tuple[int, ...] = THREAD_CANDIDATES, dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """Time the probe at each thread count (capped at the usable CPUs); returns the record.

    The record: ``{"threads": best, "seconds": {n: s}, "dtype": name, "machine": key}``.
    """
    import torch

    dt = dtype if dtype is not None else resolve_dtype("auto", "cpu")
    counts = sorted({min(c, _usable_cpus()) for c in candidates if c >= 1})
    seconds = {n: _time_probe(n, dt) for n in counts}
    best = min(seconds, key=lambda n: seconds[n])
    return {
        "threads": best,
        "seconds": {str(n): s for n, s in seconds.items()},
        "dtype": str(dt).removeprefix("torch."),
        "machine": machine_key(),
        "torch_default": torch.get_num_threads(),
    }


def threads_cache_path() -> Path:
    """Where :func:`auto_threads` keeps its answer."""
    from research_env.cache import cache_dir

    return cache_dir() / "runtime" / "threads.json"


def auto_threads(path: Path | None = None, refresh: bool = False) -> int:
    """The measured best thread count of this machine, probed once and cached.

    A cached answer for another machine key (CPU model, CPU count, torch version) or an
    unreadable file is ignored and measured again; the file is written atomically.
    """
    path = path if path is not None else threads_cache_path()
    key = machine_key()
    if not refresh and path.is_file():
        try:
            record = json.loads(path.read_text())
            if record.get("machine") == key and int(record["threads"]) >= 1:
                return int(record["threads"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # measured again below
    record = measure_threads()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)
    return int(record["threads"])


def resolve_threads(threads: int | str | None) -> int | None:
    """``None``: leave the libraries' defaults; ``"auto"``: :func:`auto_threads`; else ``int``.

    Raises:
        ValueError: For anything but ``None``, ``"auto"`` or a positive integer.
    """
    if threads is None:
        return None
    if threads == "auto":
        return auto_threads()
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ValueError(f"threads: expected auto or a positive integer, got {threads!r}") from None
    if n < 1:
        raise ValueError(f"threads: expected auto or a positive integer, got {threads!r}")
    return n


def apply_threads(threads: int | str | None) -> int | None:
    """Resolve ``threads`` and set it for torch, and for numba / faiss when already imported.

    Returns:
        The count applied (``None``: nothing changed).
    """
    n = resolve_threads(threads)
    if n is None:
        return None
    import torch

    # numba first: its OpenMP layer shares libgomp with torch and resets torch's count
    numba = sys.modules.get("numba")
    if numba is not None:
        # a numba without a threading layer runs single-threaded anyway
        with contextlib.suppress(AttributeError, ValueError):
            numba.set_num_threads(min(n, int(numba.config.NUMBA_NUM_THREADS)))
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(n)
    torch.set_num_threads(n)
    return n
