"""A small OpenAI-compatible server over a transformers model, for engine tests (not a product).

It answers the two endpoints the engines and :class:`RemoteGenerator` call, the way vLLM's
``vllm serve`` does:

* ``POST /v1/completions`` with ``prompt`` as token ids (or text): the continuation, with
  ``logprobs`` (``return_tokens_as_token_ids``: tokens as ``"token_id:N"``), ``token_ids``,
  ``finish_reason`` (``stop`` / ``length``) and vLLM's ``stop_reason`` (the stop string, or
  ``None`` at EOS);
* ``POST /v1/chat/completions``: the chat template applied, one assistant message back.

Sampling is :class:`~research_agents.generation.hf.HFGenerator`'s, one request at a time (a
lock), so greedy ids are the in-process generator's by construction of the model, not of the
wire: the test compares what crossed HTTP with a separate in-process generator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from research_agents.generation.base import SamplingParams
from research_agents.generation.hf import HFGenerator

from research_env.retrieval.server import bind_socket

MAX_TOKENS_CAP = 512


class CompletionRequest(BaseModel):
    model: str = ""
    prompt: list[int] | str
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] | str | None = None
    logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    return_tokens_as_token_ids: bool = False
    return_token_ids: bool = False


class ChatRequest(BaseModel):
    model: str = ""
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | str | None = None


ChatPolicy = Callable[[list[dict[str, Any]]], str]
"""A scripted chat policy: the messages so far -> the assistant's text (stop string kept)."""


def create_app(
    generator: HFGenerator, model_name: str = "tiny", chat_policy: ChatPolicy | None = None
) -> FastAPI:
    """The FastAPI app serving ``generator`` (chat turns from ``chat_policy`` when given).

    Like OpenAI's and vLLM's chat endpoints, a stop string that ended a chat turn is not in the
    returned content.
    """
    app = FastAPI()
    lock = threading.Lock()
    chats: list[list[dict[str, Any]]] = []
    app.state.chats = chats  # every chat request's messages, in order (tests read them)
    tok = generator.tokenizer

    def params(max_tokens: int, temperature: float, top_p: float, top_k: int, stop: Any, seed: Any):
        if not 1 <= max_tokens <= MAX_TOKENS_CAP:
            raise HTTPException(400, f"max_tokens must be in [1, {MAX_TOKENS_CAP}]")
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return SamplingParams(
            max_new_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=max(top_k, 0),
            stop=stops,
            seed=seed,
        )

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict[str, Any]:
        ids = req.prompt if isinstance(req.prompt, list) else tok.encode(req.prompt)
        p = params(req.max_tokens, req.temperature, req.top_p, req.top_k, req.stop, req.seed)
        with lock:
            [g] = generator.generate([ids], p)
        text = tok.decode(g.token_ids, skip_special_tokens=req.skip_special_tokens)
        if g.stop_string is not None and not req.include_stop_str_in_output:
            text = text[: text.find(g.stop_string)]
        choice: dict[str, Any] = {
            "index": 0,
            "text": text,
            "finish_reason": "length" if g.finish_reason == "length" else "stop",
            "stop_reason": g.stop_string,
        }
        if req.logprobs is not None:
            tokens = (
                [f"token_id:{i}" for i in g.token_ids]
                if req.return_tokens_as_token_ids
                else tok.convert_ids_to_tokens(g.token_ids)
            )
            choice["logprobs"] = {"tokens": tokens, "token_logprobs": g.logprobs}
        if req.return_token_ids:
            choice["token_ids"] = g.token_ids
        return {
            "id": f"cmpl-{time.monotonic_ns()}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": req.model or model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(ids),
                "completion_tokens": len(g.token_ids),
                "total_tokens": len(ids) + len(g.token_ids),
            },
        }

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        messages = [{"role": m["role"], "content": m.get("content") or ""} for m in req.messages]
        chats.append(messages)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding
            ids = list(ids["input_ids"])
        max_tokens = req.max_completion_tokens or req.max_tokens or 16
        p = params(max_tokens, req.temperature, req.top_p, 0, req.stop, req.seed)
        if chat_policy is not None:
            text, reason = chat_policy(messages), "stop"
            completion: list[int] = tok.encode(text)
        else:
            with lock:
                [g] = generator.generate([ids], p)
            text = tok.decode(g.token_ids, skip_special_tokens=True)
            reason, completion = ("length" if g.finish_reason == "length" else "stop"), g.token_ids
        for stop in p.stop:
            if text.endswith(stop):
                text = text[: -len(stop)]
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model or model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": reason,
                }
            ],
            "usage": {
                "prompt_tokens": len(ids),
                "completion_tokens": len(completion),
                "total_tokens": len(ids) + len(completion),
            },
        }

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model"}]}

    return app


class OpenAIServer:
    """Serve ``create_app(generator)`` on 127.0.0.1 from a background thread."""

    def __init__(
        self,
        generator: HFGenerator,
        model_name: str = "tiny",
        chat_policy: ChatPolicy | None = None,
    ) -> None:
        self.app = create_app(generator, model_name, chat_policy)
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False)
        )
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> OpenAIServer:
        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenAI-compatible test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
