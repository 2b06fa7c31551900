"""ScriptedServer: a local endpoint speaking OpenAI chat-completions, answering from a script.

For tests (rate limits, server errors, slow replies: the real client against a
real socket) and for a demo that needs no key. Standard library only, and bound
to the loopback interface only.

A script is an ordered list of entries. Each request takes the first unconsumed
entry whose optional "when" substring occurs in the request's message text:

    {"content": "text"}                         a normal completion
    {"status": 429, "headers": {"Retry-After": "0"}}   an OpenAI-style error
    {"delay_s": 3.0, "content": "..."}          answer late (client timeouts)
    {"when": "traceback", "repeat": 2, ...}     match on content, serve 2 requests

Run one from a file: python -m iml_ray.llm.serving.scripted_server SCRIPT.json [--port N]
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from iml_ray.llm.extract import message_text
from iml_ray.llm.serving.http_route import send_json

log = logging.getLogger(__name__)

ENTRY_KEYS = {"content", "status", "headers", "message", "delay_s", "when", "repeat", "usage", "finish_reason"}
LOOPBACK = ("127.0.0.1", "localhost")
MODEL_ID = "scripted"


class ScriptedServer:
    def __init__(self, script: list[dict], default: dict | None = None, host: str = "127.0.0.1", port: int = 0):
        if host not in LOOPBACK:
            raise ValueError(f"the scripted server binds to the loopback interface only, not {host!r}")
        for index, entry in enumerate([*script, *([default] if default else [])]):
            _check_entry(entry, "default" if index == len(script) else f"entry {index}")
        self._script = [dict(entry) for entry in script]
        self._left = [int(entry.get("repeat", 1)) for entry in script]
        self.default = dict(default) if default else None
        self.host = host
        self.port = port
        self._requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the scripted server is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        """What the server received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def start(self) -> "ScriptedServer":
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        # A reply still sleeping for a timeout test must not hold up stop().
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm-server", daemon=True)
        self._thread.start()
        log.debug("scripted LLM server listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ScriptedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _take(self, body: dict, headers: dict) -> tuple[dict | None, int | str | None]:
        """The entry answering this request, and its index (or "default"); recorded under the lock."""
        text = message_text(body.get("messages"))
        with self._lock:
            chosen: tuple[dict | None, int | str | None] = (None, None)
            for index, entry in enumerate(self._script):
                if self._left[index] > 0 and entry.get("when", "") in text:
                    self._left[index] -= 1
                    chosen = (entry, index)
                    break
            else:
                if self.default is not None:
                    chosen = (self.default, "default")
            self._requests.append({"body": body, "headers": headers, "answered_with": chosen[1]})
        return chosen

    def _note_usage(self, answered_with: int | str | None, usage: dict) -> None:
        """The usage reported for the latest request that this entry answered (what the client should count)."""
        with self._lock:
            for record in reversed(self._requests):
                if record["answered_with"] == answered_with and "usage" not in record:
                    record["usage"] = dict(usage)
                    break

    def _record_unanswered(self, body: Any, headers: dict) -> None:
        with self._lock:
            self._requests.append({"body": body, "headers": headers, "answered_with": None})


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"scripted server {where}: an entry is a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ValueError(f"scripted server {where}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    if "content" not in entry and "status" not in entry:
        raise ValueError(f"scripted server {where}: needs 'content' or 'status'")
    if int(entry.get("repeat", 1)) < 1:
        raise ValueError(f"scripted server {where}: repeat must be >= 1")


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _error_body(status: int, message: str) -> dict:
    if status == 429:
        kind, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", None
    else:
        kind, code = "invalid_request_error", None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion(body: dict, entry: dict) -> dict:
    content = str(entry.get("content", ""))
    prompt_tokens = _tokens(message_text(body.get("messages")))
    completion_tokens = _tokens(content)
    usage = entry.get("usage") or {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                   "total_tokens": prompt_tokens + completion_tokens}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL_ID),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": None, "finish_reason": entry.get("finish_reason", "stop")}],
        "usage": usage,
    }


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"          # keep-alive, as openai's client expects

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [
                    {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "iml-ray"}]})
            else:
                self._send(404, _error_body(404, f"no route GET {self.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._record_and_send(raw, headers, 404, f"no route POST {self.path}; only /v1/chat/completions")
                return
            try:
                body = json.loads(raw or b"null")
            except json.JSONDecodeError as exc:
                self._record_and_send(raw, headers, 400, f"the request body is not JSON: {exc}")
                return
            if not isinstance(body, dict):
                self._record_and_send(body, headers, 400, "the request body must be a JSON object")
                return
            if body.get("stream"):
                self._record_and_send(body, headers, 400, "streaming not supported by the scripted server")
                return
            entry, index = server._take(body, headers)
            if entry is None:
                self._send(503, _error_body(503, "script exhausted"))
                return
            if entry.get("delay_s"):
                time.sleep(float(entry["delay_s"]))     # this request's own thread: others go on
            status = int(entry.get("status", 200))
            if status != 200:
                message = entry.get("message") or f"scripted {status} {_phrase(status)}"
                self._send(status, _error_body(status, message), entry.get("headers"))
            else:
                completion = _completion(body, entry)
                server._note_usage(index, completion["usage"])
                self._send(200, completion, entry.get("headers"))

        def _record_and_send(self, body: Any, headers: dict, status: int, message: str) -> None:
            if isinstance(body, bytes):
                body = body.decode("utf-8", "replace")
            server._record_unanswered(body, headers)
            self._send(status, _error_body(status, message))

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            send_json(self, status, payload, headers)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("scripted LLM server: " + format, *args)

    return Handler


def load_script(path: Path) -> tuple[list[dict], dict | None]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict) and isinstance(data.get("script", []), list):
        return data.get("script", []), data.get("default")
    raise ValueError(f"{path}: a script is a JSON list of entries, or {{\"script\": [...], \"default\": {{...}}}}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iml_ray.llm.serving.scripted_server",
                                     description="Serve a scripted OpenAI-compatible chat endpoint on 127.0.0.1.")
    parser.add_argument("script", type=Path, help="JSON file: a list of entries, or {script: [...], default: {...}}")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    args = parser.parse_args(argv)
    try:
        script, default = load_script(args.script)
        server = ScriptedServer(script, default=default, port=args.port).start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
