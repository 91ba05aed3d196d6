"""RemoteGenerator against a real OpenAI-compatible server on 127.0.0.1 (vLLM's wire format)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.engines
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("fastapi", reason="needs the server extra")
pytest.importorskip("httpx", reason="needs the server extra")

from openai_server import OpenAIServer  # noqa: E402
from research_agents.generation.base import SamplingParams  # noqa: E402
from research_agents.generation.hf import HFGenerator  # noqa: E402
from research_agents.generation.remote import (  # noqa: E402
    RemoteGenerationError,
    RemoteGenerator,
    RemoteGeneratorConfig,
    parse_choice,
)
from research_agents.models import TINY, load_model, load_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def local(tokenizer) -> HFGenerator:  # type: ignore[no-untyped-def]
    return HFGenerator(load_model(TINY), tokenizer)


@pytest.fixture(scope="module")
def server(tokenizer) -> Iterator[OpenAIServer]:  # type: ignore[no-untyped-def]
    # Its own copy of the weights, loaded separately: nothing is shared with `local`.
    with OpenAIServer(HFGenerator(load_model(TINY), tokenizer), "tiny") as s:
        yield s


@pytest.fixture
def remote(server: OpenAIServer) -> Iterator[RemoteGenerator]:
    gen = RemoteGenerator(RemoteGeneratorConfig(base_url=server.url, model="tiny"))
    yield gen
    gen.close()


def prompts(tokenizer) -> list[list[int]]:  # type: ignore[no-untyped-def]
    texts = ["What is the capital of Peru?", "<search> currency of Chile", "Lima is"]
    return [tokenizer.encode(t) for t in texts]


def test_greedy_ids_match_the_in_process_generator(tokenizer, local, remote):
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    mine = local.generate(prompts(tokenizer), params)
    theirs = remote.generate(prompts(tokenizer), params)
    for a, b in zip(mine, theirs):
        assert b.token_ids == a.token_ids
        assert b.finish_reason == a.finish_reason == "length"
        assert b.logprobs == pytest.approx(a.logprobs, abs=1e-4)
    assert remote.tokens_generated == sum(len(g.token_ids) for g in theirs)


def test_stop_strings_come_back_as_stop(tokenizer, local, remote):
    # Find a string the greedy continuation produces, then stop on it.
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    [ref] = local.generate(prompts(tokenizer)[:1], params)
    stop = tokenizer.decode(ref.token_ids[3:5])
    stopped = SamplingParams(max_new_tokens=12, temperature=0.0, stop=(stop,))
    [a] = local.generate(prompts(tokenizer)[:1], stopped)
    [b] = remote.generate(prompts(tokenizer)[:1], stopped)
    assert a.finish_reason == "stop" and a.stop_string == stop
    assert (b.token_ids, b.finish_reason, b.stop_string) == (a.token_ids, "stop", stop)


def test_sampling_is_reproducible_per_seed(tokenizer, remote):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
    batch = [prompts(tokenizer)[0]] * 3
    first = [g.token_ids for g in remote.generate(batch, params)]
    again = [g.token_ids for g in remote.generate(batch, params)]
    assert first == again
    assert len({tuple(x) for x in first}) > 1  # G copies get different seeds


def test_errors_are_one_clear_line(server, tokenizer):
    gen = RemoteGenerator(RemoteGeneratorConfig(base_url=server.url, model="tiny", retries=0))
    with pytest.raises(RemoteGenerationError, match=r"HTTP 400: .*max_tokens must be in"):
        gen.generate(prompts(tokenizer)[:1], SamplingParams(max_new_tokens=100_000))
    with pytest.raises(RuntimeError, match="has no weight_sync"):
        gen.sync_weights(object())
    dead = RemoteGenerator(
        RemoteGeneratorConfig(base_url="http://127.0.0.1:9", model="tiny", retries=1)
    )
    with pytest.raises(RemoteGenerationError, match=r"failed after 2 tries \(ConnectError"):
        dead.generate(prompts(tokenizer)[:1], SamplingParams(max_new_tokens=2))
    with pytest.raises(RemoteGenerationError, match="no token ids with log-probs"):
        parse_choice({"choices": [{"text": "x"}]}, "here")
    with pytest.raises(ValueError, match="base_url"):
        RemoteGeneratorConfig(base_url="127.0.0.1:8000", model="tiny")


def test_vllm_token_strings_and_eos(tokenizer):
    eos = tokenizer.eos_token_id
    payload = {
        "choices": [
            {
                "finish_reason": "stop",
                "stop_reason": None,
                "logprobs": {
                    "tokens": ["token_id:5", f"token_id:{eos}"],
                    "token_logprobs": [-1, -2],
                },
            }
        ]
    }
    g = parse_choice(payload, "here")
    assert (g.token_ids, g.logprobs, g.finish_reason) == ([5, eos], [-1.0, -2.0], "eos")
