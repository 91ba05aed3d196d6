"""dtype / threads / device selection, the decode kernels and the log-prob mismatch correction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from research_agents import runtime  # noqa: E402
from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.generation.kernels import (  # noqa: E402
    GrowingCacheLayer,
    grouped_decode_attention,
)
from research_agents.grpo.config import GRPOConfig  # noqa: E402
from research_agents.grpo.policy import token_logprobs  # noqa: E402
from research_agents.grpo.presets import get_preset  # noqa: E402
from research_agents.models import load_model, load_tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- runtime
def test_auto_dtype_follows_the_cpu_flags() -> None:
    flags = runtime.cpu_flags()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert runtime.cpu_has_bf16() is native
    want = torch.bfloat16 if native else torch.float32
    assert runtime.resolve_dtype("auto", "cpu") == want
    assert runtime.resolve_dtype("float32", "cpu") == torch.float32
    assert runtime.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match=r"dtype: expected one of .* got .fp8."):
        runtime.resolve_dtype("fp8")


def test_device_selection() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == want
    assert runtime.resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device: expected auto, cpu or cuda"):
        runtime.resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is visible"):
            runtime.resolve_device("cuda")


def test_auto_threads_is_measured_once_and_cached(tmp_path: Path) -> None:
    path = tmp_path / "threads.json"
    first = runtime.auto_threads(path)
    record = json.loads(path.read_text())
    assert record["threads"] == first
    assert record["machine"] == runtime.machine_key()
    assert set(record["seconds"]) == {str(min(c, runtime._usable_cpus())) for c in (1, 2)}
    assert first == int(min(record["seconds"], key=lambda k: record["seconds"][k]))
    # the cached answer is what later calls return (no new measurement) ...
    record["threads"] = 7
    path.write_text(json.dumps(record))
    assert runtime.auto_threads(path) == 7
    # ... unless it was measured on another machine, or the file is unreadable
    record["machine"] = "some other machine"
    path.write_text(json.dumps(record))
    assert runtime.auto_threads(path) in (1, 2)
    assert json.loads(path.read_text())["machine"] == runtime.machine_key()
    path.write_text("{not json")
    assert runtime.auto_threads(path) in (1, 2)


def test_apply_threads_sets_torch_and_numba() -> None:
    numba = pytest.importorskip("numba")
    before = torch.get_num_threads()
    try:
        assert runtime.apply_threads(1) == 1
        assert torch.get_num_threads() == 1
        assert numba.get_num_threads() == 1
        assert runtime.apply_threads(None) is None
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads: expected auto or a positive integer"):
        runtime.resolve_threads("many")
    with pytest.raises(ValueError, match="threads"):
        GRPOConfig(threads=0)


# ---------------------------------------------------------------- decode kernels
def test_grouped_decode_attention_equals_sdpa() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    gen = torch.Generator().manual_seed(0)
    b, h, hkv, d, length = 3, 6, 2, 16, 11
    q = torch.randn(b, h, 1, d, generator=gen)
    k = torch.randn(b, hkv, length, d, generator=gen)
    v = torch.randn(b, hkv, length, d, generator=gen)
    mask = torch.ones(b, 1, 1, length, dtype=torch.bool)
    mask[0, ..., :4] = False  # a left-padded row
    module = torch.nn.Module()
    module.num_key_value_groups = h // hkv  # type: ignore[assignment]
    module.is_causal = True  # type: ignore[assignment]
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=d**-0.5)
    got, _ = grouped_decode_attention(module, q, k, v, mask, scaling=d**-0.5)
    assert got.shape == want.shape == (b, 1, h, d)
    assert torch.allclose(got, want, atol=1e-5)
    got_none, _ = grouped_decode_attention(module, q, k, v, None, scaling=d**-0.5)
    want_none, _ = sdpa_attention_forward(module, q, k, v, None, scaling=d**-0.5)
    assert torch.allclose(got_none, want_none, atol=1e-5)


def test_growing_cache_layer_grows_and_selects_rows() -> None:
    layer = GrowingCacheLayer(capacity=2)
    k1 = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)
    keys, _ = layer.update(k1, -k1)
    assert keys.shape == (2, 1, 3, 2) and torch.equal(keys, k1)
    k2 = torch.full((2, 1, 1, 2), 9.0)
    keys, _ = layer.update(k2, -k2)
    assert layer.get_seq_length() == 4
    assert torch.equal(keys, torch.cat([k1, k2], dim=2))
    layer.batch_select_indices(torch.tensor([1, 1, 0]))
    assert torch.equal(layer.keys, torch.cat([k1, k2], dim=2)[[1, 1, 0]])
    assert torch.equal(layer.values, -layer.keys)


@pytest.fixture(scope="module")
def tiny() -> tuple[object, object]:
    return load_model("tiny").eval(), load_tokenizer("tiny")


def test_fast_decode_samples_what_the_plain_loop_samples(tiny: tuple[object, object]) -> None:
    model, tok = tiny
    prompts = [tok.encode(t) for t in ("Question: capital of France?", "Hi", "List three")] * 2
    params = SamplingParams(max_new_tokens=12, temperature=0.8, seed=5, stop=("</search>",))
    plain = HFGenerator(model, tok, fast_decode=False).generate(prompts, params)  # type: ignore[arg-type]
    fast_gen = HFGenerator(model, tok, fast_decode=True)  # type: ignore[arg-type]
    assert fast_gen.fast_decode
    fast = fast_gen.generate(prompts, params)
    for a, b in zip(plain, fast):
        assert a.token_ids == b.token_ids
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_bf16_generator_samples_from_a_synced_copy(tiny: tuple[object, object]) -> None:
    _, tok = tiny
    trained = load_model("tiny")  # its own copy: this test changes its weights
    gen = HFGenerator(trained, tok, dtype="bfloat16")  # type: ignore[arg-type]
    assert gen.model is not trained
    assert next(gen.model.parameters()).dtype == torch.bfloat16
    assert next(trained.parameters()).dtype == torch.float32
    out = gen.generate([tok.encode("Hello there")], SamplingParams(max_new_tokens=4, seed=1))  # type: ignore[attr-defined]
    assert len(out[0].token_ids) == 4
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    gen.sync_weights(trained)
    for dst, src in zip(gen.model.parameters(), trained.parameters()):
        assert torch.equal(dst, src.to(torch.bfloat16))


# ---------------------------------------------------------------- mismatch correction
def _trainer(tmp_path: Path, correction: str, **kw: object) -> object:
    from research_agents.grpo.trainer import GRPOTrainer

    cfg = get_preset("tiny").replace(
        output_dir=str(tmp_path / correction),
        logprob_correction=correction,
        mask_truncated=False,
        mask_retrieval_failed=False,
        tis_cap=1.5,
        **kw,
    )
    model = load_model("tiny")
    tok = load_tokenizer("tiny")
    # a bf16 sampler against the fp32 trainer: a real mismatch on any CPU
    return GRPOTrainer(
        cfg, model=model, tokenizer=tok, generator=HFGenerator(model, tok, dtype="bfloat16")
    )


def _trainer_logp(trainer: object, trajs: list) -> list[torch.Tensor]:
    out = []
    for t in trajs:
        ids = torch.tensor([t.ids])
        score = torch.tensor([[0] * len(t.prompt_ids) + t.loss_mask])
        with torch.no_grad():
            lp, _ = token_logprobs(
                trainer.model, ids, torch.ones_like(ids), score, trainer.config.temperature
            )  # type: ignore[attr-defined]
        out.append(lp[0, len(t.prompt_ids) :])
    return out


@pytest.mark.parametrize("correction", ["none", "recompute", "tis"])
def test_mismatch_is_measured_and_the_correction_applied(tmp_path: Path, correction: str) -> None:
    trainer = _trainer(tmp_path, correction)
    trajs, _, _ = trainer.collect()  # type: ignore[attr-defined]
    adv = torch.tensor([1.0, -1.0] * (len(trajs) // 2))
    lp = _trainer_logp(trainer, trajs)
    masks = [torch.tensor(t.loss_mask, dtype=torch.bool) for t in trajs]
    sampler = [torch.tensor(t.old_logprobs) for t in trajs]
    diffs = torch.cat([(a - s)[m] for a, s, m in zip(lp, sampler, masks)])
    n_tok = float(sum(int(m.sum()) for m in masks))
    out = trainer._update(trajs, adv)  # type: ignore[attr-defined]
    # the metric is the mean |log p_trainer - log p_sampler| over sampled tokens, before the update
    assert out["train/logprob_mismatch"] == pytest.approx(float(diffs.abs().mean()), rel=1e-3)
    assert out["train/logprob_mismatch_max"] == pytest.approx(float(diffs.abs().max()), rel=1e-3)
    assert out["train/logprob_mismatch"] > 0  # bf16 vs fp32
    ratio = [torch.exp(a - s) for a, s in zip(lp, sampler)]
    if correction == "none":  # the ratio is against the sampler: mismatch shows as ratio != 1
        assert out["grpo/ratio_mean"] == pytest.approx(
            float(torch.cat([r[m] for r, m in zip(ratio, masks)]).mean()), rel=1e-4
        )
    else:  # old log-probs are the trainer's own: ratio exactly 1 in the single update step
        assert out["grpo/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    if correction == "tis":
        w = [r.clamp(max=1.5) for r in ratio]
        assert out["train/tis_weight_mean"] == pytest.approx(
            float(torch.cat([x[m] for x, m in zip(w, masks)]).mean()), rel=1e-4
        )
        # token_mean PG loss at ratio 1: -sum_i a_i sum_t w_it / N
        want = -sum(float(a) * float(x[m].sum()) for a, x, m in zip(adv, w, masks)) / n_tok
    else:
        want = None
    if correction == "recompute":
        want = -sum(float(a) * float(m.sum()) for a, m in zip(adv, masks)) / n_tok
    if want is not None:
        assert out["loss/pg"] == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_tis_over_several_optimiser_steps_uses_the_trainers_old_logprobs(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, "tis", mini_batch_size=2, epochs=2)
    trajs, _, _ = trainer.collect()  # type: ignore[attr-defined]
    lp = _trainer_logp(trainer, trajs)
    out = trainer._update(trajs, torch.tensor([1.0, -1.0] * (len(trajs) // 2)))  # type: ignore[attr-defined]
    assert out["grpo/updates"] == 4
    stored = trainer.last_update.trainer_old  # type: ignore[attr-defined]
    assert len(stored) == len(trajs)
    for t, want in zip(trajs, lp):
        assert torch.allclose(stored[id(t)], want, atol=1e-5)
    assert out["train/logprob_mismatch"] > 0


def test_auto_resolves_to_tis_only_with_a_bf16_sampler(tmp_path: Path) -> None:
    from research_agents.grpo.trainer import GRPOTrainer

    fp32 = GRPOTrainer(get_preset("tiny").replace(output_dir=str(tmp_path / "a")))
    assert fp32.autocast_dtype is None and fp32.logprob_correction == "none"
    auto = GRPOTrainer(get_preset("tiny").replace(output_dir=str(tmp_path / "b"), dtype="auto"))
    if runtime.cpu_has_bf16():
        assert auto.autocast_dtype == torch.bfloat16
        assert auto.logprob_correction == "tis"
        assert next(auto.model.parameters()).dtype == torch.float32  # fp32 master weights
        assert next(auto.generator.model.parameters()).dtype == torch.bfloat16  # type: ignore[attr-defined]
        assert isinstance(auto.optimizer, torch.optim.AdamW)
        assert auto.optimizer.defaults["fused"] is True
    else:
        assert auto.autocast_dtype is None and auto.logprob_correction == "none"


# ---------------------------------------------------------------- gpu_check
def test_gpu_check_smoke_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny"]
    cmd += ["--steps", "1", "--warmup", "0", "--prompts", "2", "--group", "2"]
    cmd += ["--prompt-len", "12", "--max-new", "6", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "rollout tokens/s:" in proc.stdout and "step s:" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["sequences"] == 4
    assert figures["rollout_tokens_per_s"] > 0 and figures["update_s"] > 0


def test_gpu_check_names_a_missing_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cuda"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "gpu_check: device: 'cuda' asked for, but no CUDA device is visible"
    )


def _gpu_check_module() -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_generator_and_update_in_bf16() -> None:
    gpu_check = _gpu_check_module()
    args = ["--device", "cuda", "--tiny", "--steps", "1", "--prompts", "2", "--group", "2"]
    assert gpu_check.main(args) == 0  # type: ignore[attr-defined]
    model = load_model("tiny").to("cuda")
    tok = load_tokenizer("tiny")
    gen = HFGenerator(model, tok, dtype="auto")  # type: ignore[arg-type]
    assert gen.dtype == torch.bfloat16 and not gen.fast_decode
    out = gen.generate([tok.encode("Hello")] * 3, SamplingParams(max_new_tokens=5, seed=0))  # type: ignore[attr-defined]
    assert all(len(g.token_ids) == 5 or g.finish_reason == "eos" for g in out)
