"""The reference generator: a batched sampling loop over a transformers causal LM.

It is written out (rather than calling ``model.generate``) so the log-prob of every sampled token
is the one the trainer computes for it: ``log_softmax(logits / temperature)``, before any top-p or
top-k truncation. Prompts are left-padded into one batch, prefilled once, then decoded with a KV
cache; rows that finish are dropped from the batch (and the cache) as they go.

With ``dtype`` (e.g. ``"auto"``: bfloat16 on a CPU with AVX512-BF16) the generator samples from its
own copy of the model in that dtype and :meth:`HFGenerator.sync_weights` copies the trained
weights into it after each update; the sampled log-probs then differ slightly from the trainer's
(the trainer measures and corrects that, see ``GRPOConfig.logprob_correction``). On a CPU the
decode loop uses :mod:`.kernels`: a preallocated KV cache and grouped one-token attention.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from research_agents.generation.base import FinishReason, Generation, SamplingParams

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """All ids that end a text for this model: the tokenizer's EOS and the generation config's."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    cfg = getattr(model, "generation_config", None)
    eos = getattr(cfg, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, list):
        ids.update(int(e) for e in eos)
    return ids


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits outside the top-k / nucleus (rows are independent)."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cum - torch.softmax(sorted_logits, dim=-1) > top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


_SAMPLE_BLOCK = 256


def _sample(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Draw one index per row of ``probs`` ([rows, vocab], non-negative, any total > 0).

    Inverse-CDF sampling in two levels: pick a block of ``_SAMPLE_BLOCK`` ids from the cumulative
    block masses, then an id inside it, two uniform draws per row. ``torch.multinomial`` draws one
    exponential variate per vocabulary entry instead: for 32 rows of SmolLM2's 49k-entry vocabulary
    ~90 ms on a CPU core against ~1 ms here. Two levels keep the float32 cumulative sums short, so
    rounding moves at most ~5e-6 of probability mass (one 49k-long cumsum: ~4e-4). Each ``u`` lies
    in ``(0, total]`` and the search returns the first entry whose cumulative sum reaches it, so an
    id (or block) of probability 0 is never drawn and the index is always in range.
    """
    rows, vocab = probs.shape
    if vocab % _SAMPLE_BLOCK:  # pad with zeros: never drawn
        probs = torch.nn.functional.pad(probs, (0, _SAMPLE_BLOCK - vocab % _SAMPLE_BLOCK))
    blocks = probs.reshape(rows, -1, _SAMPLE_BLOCK)
    u = (1.0 - torch.rand((rows, 2), generator=rng, dtype=probs.dtype)).to(probs.device)
    coarse = blocks.sum(-1).cumsum(-1)
    block = torch.searchsorted(coarse, u[:, :1] * coarse[:, -1:])
    fine = blocks[torch.arange(rows, device=probs.device), block[:, 0]].cumsum(-1)
    inner = torch.searchsorted(fine, u[:, 1:] * fine[:, -1:])
    return (block * _SAMPLE_BLOCK + inner)[:, 0]


class HFGenerator:
    """Batched sampling with a transformers model and its KV cache.

    Args:
        model: A causal LM. When it is the model being trained, generations always use its
            current weights and :meth:`sync_weights` has nothing to do.
        tokenizer: Its tokenizer (used to spot stop strings and EOS ids).
        max_batch_size: Most prompts decoded together; longer lists are split.
        reuse_kv: Keep the KV cache of rows that stopped on a stop string, so the next call
            that continues them (next turn: same ids + observation) only runs the new tokens.
        dtype: Sample in this dtype (``"auto"``, ``"bfloat16"``, ... see
            :func:`research_agents.runtime.resolve_dtype`); when it differs from ``model``'s the
            generator keeps its own converted copy. ``None``: ``model`` as it is.
        fast_decode: Use :mod:`.kernels` (preallocated KV cache, grouped one-token attention);
            ``None``: on a CPU only.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_batch_size: int = 64,
        reuse_kv: bool = True,
        dtype: str | torch.dtype | None = None,
        fast_decode: bool | None = None,
    ) -> None:
        from research_agents.runtime import resolve_dtype

        self.source = model
        param = next(model.parameters())
        want = resolve_dtype(dtype, param.device) if dtype is not None else param.dtype
        if want != param.dtype:
            model = copy.deepcopy(model)
            model = cast(torch.nn.Module, model).to(want).eval()  # type: ignore[assignment]
            for p in model.parameters():
                p.requires_grad_(False)
        self.model = model
        self.dtype = want
        if fast_decode is None:
            fast_decode = param.device.type == "cpu"
        self.fast_decode = False
        if fast_decode:
            from research_agents.generation.kernels import use_decode_attention

            self.fast_decode = use_decode_attention(self.model)
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self._rng = torch.Generator().manual_seed(0)
        self.tokens_generated = 0
        self.reuse_kv = reuse_kv
        self._kv_store: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._kv_lengths: set[int] = set()

    def rng_state(self) -> torch.Tensor:
        """The sampler's RNG state (stored in checkpoints)."""
        return self._rng.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Restore :meth:`rng_state`."""
        self._rng.set_state(state)

    def sync_weights(self, model: Any) -> None:
        """Copy ``model``'s weights in, unless it is the very model this generator samples from.

        For the model the generator was built from (its own copy in another dtype) this is a
        parameter-by-parameter ``copy_`` (with the dtype conversion), ~0.1 s for SmolLM2.
        """
        self._kv_store, self._kv_lengths = {}, set()  # computed with the old weights
        if model is self.model:
            return
        if model is self.source:
            with torch.no_grad():
                for dst, src in zip(self.model.parameters(), model.parameters(), strict=True):
                    dst.copy_(src)
            return
        self.model.load_state_dict(model.state_dict())

    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        """Sample one continuation per prompt (see :class:`SamplingParams`)."""
        if params.seed is not None:
            self._rng.manual_seed(params.seed)
        out: list[Generation] = []
        for start in range(0, len(prompts), self.max_batch_size):
            out.extend(self._generate_batch(prompts[start : start + self.max_batch_size], params))
        return out

    def _stop_hit(self, ids: list[int], stops: tuple[str, ...], tail: int) -> str | None:
        text = self.tokenizer.decode(ids[-tail:], skip_special_tokens=False)
        for s in stops:
            if s in text:
                return s
        return None

    # A finished row's KV cache is kept when it ended on a stop string: the rollout continues
    # exactly that context (plus the observation) on the next turn, so only the new tokens need a
    # forward pass. Entries not used by the next call are dropped.
    def _lookup(self, prompt: Sequence[int]) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]]]:
        for length in sorted(self._kv_lengths, reverse=True):
            if length < len(prompt):
                hit = self._kv_store.get(tuple(prompt[:length]))
                if hit is not None:
                    return length, hit
        return 0, []

    @torch.inference_mode()
    def _generate_batch(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams
    ) -> list[Generation]:
        n = len(prompts)
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        # GRPO sends each prompt G times: prefill each distinct prompt once, then copy its cache.
        first: dict[tuple[int, ...], int] = {}
        unique: list[Sequence[int]] = []
        for p in prompts:
            if tuple(p) not in first:
                first[tuple(p)] = len(unique)
                unique.append(p)
        mapping = [first[tuple(p)] for p in prompts]
        device = next(self.model.parameters()).device
        cached = [self._lookup(p) if self.reuse_kv else (0, []) for p in unique]
        self._kv_store, self._kv_lengths = {}, set()
        n_cached = max(c for c, _ in cached)
        suffixes = [list(p[c:]) for p, (c, _) in zip(unique, cached)]
        width = max(len(x) for x in suffixes)
        rows = len(unique)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, n_cached + width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        for i, (suffix, (c, _)) in enumerate(zip(suffixes, cached)):
            input_ids[i, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            mask[i, n_cached - c : n_cached] = 1
            mask[i, n_cached + width - len(suffix) :] = 1
            positions[i, width - len(suffix) :] = torch.arange(c, c + len(suffix))
        input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)

        from transformers import DynamicCache

        layers = getattr(self.model.config.get_text_config(), "num_hidden_layers", None)
        if self.fast_decode and layers:
            from research_agents.generation.kernels import growing_cache

            cache = growing_cache(int(layers), n_cached + width + params.max_new_tokens)
        else:
            cache = DynamicCache()
        if n_cached:
            layers = next(kv for c, kv in cached if c)
            for layer, (k0, _v0) in enumerate(layers):
                keys = k0.new_zeros((rows, k0.shape[0], n_cached, k0.shape[-1]))
                values = torch.zeros_like(keys)
                for i, (c, kv) in enumerate(cached):
                    if c:
                        keys[i, :, n_cached - c :] = kv[layer][0]
                        values[i, :, n_cached - c :] = kv[layer][1]
                cache.update(keys, values, layer)
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
            if len(unique) < n:
                expand = torch.tensor(mapping, device=device)
                cache.batch_select_indices(expand)
                logits, mask, positions = logits[expand], mask[expand], positions[expand]
            ids: list[list[int]] = [[] for _ in range(n)]
            lps: list[list[float]] = [[] for _ in range(n)]
            reasons: list[FinishReason] = ["length"] * n
            stop_strings: list[str | None] = [None] * n
            active = list(range(n))  # batch row -> prompt index
            next_pos = positions[:, -1] + 1
            tail = max((len(s) for s in params.stop), default=0) + 2
            for _ in range(params.max_new_tokens):
                logits = logits.float()
                if params.greedy:
                    logp = torch.log_softmax(logits, dim=-1)
                    tokens = logp.argmax(dim=-1)
                else:
                    scaled = logits if params.temperature == 1.0 else logits / params.temperature
                    logp = torch.log_softmax(scaled, dim=-1)
                    if params.top_k > 0 or params.top_p < 1.0:
                        filtered = _filter_logits(scaled, params.top_k, params.top_p)
                        probs = torch.softmax(filtered, -1)
                    else:
                        probs = logp.exp()  # the same distribution, one pass cheaper
                    tokens = _sample(probs, self._rng)
                token_lp = logp.gather(-1, tokens[:, None])[:, 0].tolist()
                keep: list[int] = []
                for b, (tok, lp) in enumerate(zip(tokens.tolist(), token_lp)):
                    i = active[b]
                    ids[i].append(tok)
                    lps[i].append(lp)
                    if tok in self.eos_ids:
                        reasons[i] = "eos"
                        continue
                    hit = self._stop_hit(ids[i], params.stop, tail) if params.stop else None
                    if hit is not None:
                        reasons[i], stop_strings[i] = "stop", hit
                        if self.reuse_kv:
                            self._keep_kv(cache, mask, b, list(prompts[i]) + ids[i][:-1])
                        continue
                    keep.append(b)
                self.tokens_generated += len(active)
                if not keep or len(ids[active[keep[0]]]) >= params.max_new_tokens:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask, next_pos, tokens = mask[index], next_pos[index], tokens[index]
                    active = [active[b] for b in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                logits = self.model(
                    input_ids=tokens[:, None],
                    attention_mask=mask,
                    position_ids=next_pos[:, None],
                    past_key_values=cache,
                    use_cache=True,
                ).logits[:, -1, :]
                next_pos = next_pos + 1
        finally:
            self.model.train(was_training)
        return [Generation(ids[i], lps[i], reasons[i], stop_strings[i]) for i in range(n)]

    def _keep_kv(self, cache: Any, mask: torch.Tensor, row: int, context: list[int]) -> None:
        """Store ``row``'s cache (without padding holes) for a continuation of ``context``."""
        valid = mask[row].bool()
        layers = [
            (layer.keys[row][:, valid].clone(), layer.values[row][:, valid].clone())
            for layer in cache.layers
        ]
        if layers and layers[0][0].shape[1] == len(context):
            self._kv_store[tuple(context)] = layers
            self._kv_lengths.add(len(context))
