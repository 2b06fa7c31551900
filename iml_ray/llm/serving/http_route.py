"""A local model's server behind an OpenAI-compatible HTTP route, so other tools on the cluster can share it.

POST /v1/chat/completions (non-streaming) and GET /v1/models. Each request runs
in its own thread, so requests that arrive together reach the model server
together and share its model calls. `chat` is any blocking callable with the
server's signature: the Ray actor's face (brain.LocalServerHandle) or an InProcessServer.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

log = logging.getLogger(__name__)


class ModelRoute:
    def __init__(self, chat: Callable[..., dict], model_name: str, host: str = "127.0.0.1", port: int = 0,
                 max_tokens: int = 1024):
        self.chat = chat
        self.model_name = model_name
        self.max_tokens = max_tokens
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "ModelRoute":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="model-route")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ModelRoute":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def answer(self, body: dict) -> tuple[int, dict]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, _error(400, "messages must be a non-empty list")
        if body.get("stream"):
            return 400, _error(400, "streaming is not supported; send stream: false")
        if int(body.get("n") or 1) != 1:
            return 400, _error(400, "n must be 1")
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or self.max_tokens)
        try:
            reply = self.chat(messages, max_tokens, float(body.get("temperature") or 0.0), body.get("seed"))
        except Exception as exc:   # the model server failed or went away: the caller may retry
            last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            return 503, _error(503, f"the local model could not answer: {last[:300]}")
        usage = {"prompt_tokens": reply["prompt_tokens"], "completion_tokens": reply["completion_tokens"],
                 "total_tokens": reply["prompt_tokens"] + reply["completion_tokens"]}
        return 200, {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
                     "model": body.get("model") or self.model_name,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": reply["text"]},
                                  "logprobs": None, "finish_reason": reply.get("finish_reason") or "stop"}],
                     "usage": usage}


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
    """One JSON reply; a client that already went away (its timeout) is not an error."""
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, str(value))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        log.debug("%s: the client went away before the reply", type(handler).__name__)


def _error(status: int, message: str) -> dict:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _handler_for(route: ModelRoute) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": route.model_name, "object": "model", "created": 0, "owned_by": "iml-ray"}]})
            else:
                self._send(404, _error(404, f"no route GET {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, _error(404, f"no route POST {self.path}; only /v1/chat/completions"))
                return
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError as exc:
                self._send(400, _error(400, f"the request body is not JSON: {exc}"))
                return
            if not isinstance(body, dict):
                self._send(400, _error(400, "the request body must be a JSON object"))
                return
            self._send(*route.answer(body))

        def _send(self, status: int, payload: dict) -> None:
            send_json(self, status, payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("model route: " + format, *args)

    return Handler
