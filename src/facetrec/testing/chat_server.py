"""An OpenAI-compatible chat endpoint over a tiny random-weight causal language model, built here.

The interest summaries talk to any ``/v1/chat/completions`` server; their tests need a real one
and may download nothing. So this is one: a FastAPI app serving ``POST /v1/chat/completions``
and ``GET /v1/models`` in OpenAI's shapes (usage counts, ``finish_reason``, error objects), run
by uvicorn in a background thread on a loopback port. Its model is a two-layer GPT-2 over a
byte-level vocabulary (the 256 bytes, one token each, plus end-of-text), built from a config
with seeded random weights: it runs the real generation path and writes gibberish. ``reply``
makes the server answer fixed text instead (so the JSON path is exercised over HTTP), ``delay``
holds every answer back (timeouts), and ``requests`` records each request's body and
``Authorization`` header.

    with ChatServer(reply='{"name": "Space opera", "sentence": "You like ships."}') as chat:
        Summarizer(LLMConfig(url=chat.url, model=chat.model)).summarize(...)

``python -m facetrec.testing.chat_server --port 8001`` serves it in the foreground, to try
``facetrec serve --llm-url http://127.0.0.1:8001/v1 --llm-model tiny-chat`` by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

EOS = 256
"""The end-of-text token; tokens 0-255 are bytes."""
CONTEXT = 4096
"""Tokens (bytes) of prompt plus answer the model takes."""
DEFAULT_MAX_TOKENS = 64
"""Answer length when a request names no ``max_tokens``."""


class TinyChatModel:
    """A seeded random-weight GPT-2 (2 layers, 32-d) over bytes: ``generate`` is greedy decoding."""

    def __init__(self, seed: int = 0) -> None:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(seed)
        config = GPT2Config(
            vocab_size=EOS + 1, n_positions=CONTEXT, n_embd=32, n_layer=2, n_head=2,
            bos_token_id=EOS, eos_token_id=EOS,
        )  # fmt: skip
        self.model = GPT2LMHeadModel(config).eval()
        self._lock = threading.Lock()  # one generation at a time

    @staticmethod
    def tokens(text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def generate(self, prompt: str, max_tokens: int) -> tuple[str, int, str]:
        """(text, tokens generated, finish reason "stop" or "length") after ``prompt``."""
        import torch

        ids = torch.tensor([self.tokens(prompt)])
        with self._lock, torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, do_sample=False,
                pad_token_id=EOS, eos_token_id=EOS,
            )[0, ids.shape[1]:].tolist()  # fmt: skip
        stopped = EOS in out
        out = out[: out.index(EOS)] if stopped else out
        return bytes(out).decode("utf-8", "replace"), len(out) + stopped, "stop" if stopped else "length"


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, top_p, ...: accepted, as OpenAI does
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)


def chat_text(messages: list[Message]) -> str:
    """The prompt the model continues: each message as ``<|role|>`` and its content, then the assistant's turn."""
    return "".join(f"<|{m.role}|>\n{m.content}\n" for m in messages) + "<|assistant|>\n"


class ChatServer:
    """The endpoint in a background thread on a free loopback port; ``url`` is its OpenAI base URL.
    ``reply``, ``delay`` and ``requests`` may be read and changed while it runs."""

    def __init__(
        self,
        model: str = "tiny-chat",
        reply: str | None = None,
        delay: float = 0.0,
        lm: TinyChatModel | None = None,
        port: int = 0,
    ) -> None:
        self.model, self.reply, self.delay = model, reply, delay
        self.lm = lm or TinyChatModel()
        self.requests: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.app = self._app()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ChatServer:
        import uvicorn

        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="chat-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the chat server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Release held answers, shut down, close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(timeout=10)
        self._socket.close()

    def _app(self) -> FastAPI:
        app = FastAPI(title="tiny OpenAI-compatible chat endpoint")

        @app.exception_handler(RequestValidationError)
        async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:])
            return _error(400, f"{where}: {first['msg']}", "invalid_request_error")

        @app.get("/v1/models")
        def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "facetrec"}]}

        @app.post("/v1/chat/completions", response_model=None)
        def complete(body: ChatRequest, request: Request) -> dict[str, Any] | JSONResponse:
            self.requests.append(
                {"body": body.model_dump(exclude_unset=True), "authorization": request.headers.get("authorization")}
            )
            if self.delay:
                self._stopping.wait(self.delay)
            if body.model != self.model:
                return _error(
                    404, f"The model '{body.model}' does not exist", "invalid_request_error", "model_not_found"
                )
            prompt = chat_text(body.messages)
            max_tokens = body.max_tokens or DEFAULT_MAX_TOKENS
            n_prompt = len(self.lm.tokens(prompt))
            if n_prompt + max_tokens > CONTEXT:
                message = f"{n_prompt} prompt tokens + {max_tokens} max_tokens exceed the context of {CONTEXT} tokens"
                return _error(400, message, "invalid_request_error", "context_length_exceeded")
            if self.reply is not None:
                text, n_out, finish = self.reply, len(self.lm.tokens(self.reply)), "stop"
            else:
                text, n_out, finish = self.lm.generate(prompt, max_tokens)
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
            }

        return app


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    """OpenAI's error shape."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="A tiny OpenAI-compatible chat endpoint (random weights, for trials).")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model", default="tiny-chat", help="the model name it answers to")
    parser.add_argument("--reply", help="answer this text instead of the model's gibberish")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold each answer back")
    args = parser.parse_args()
    with ChatServer(args.model, args.reply, args.delay, port=args.port) as server:
        print(f"chat endpoint: {server.url} (model {server.model!r}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
