"""LLMClient: one chat request, with budget, cache, rate limit, retries and accounting.

openai's own retries are switched off (max_retries=0) so that each attempt is
counted, logged and passed through the rate limiter here. The API key is read
from the environment only when the HTTP client is built; it is never stored on
this object, logged, or put into an exception message.
"""
from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Protocol

from iml_ray.llm.cache import ResponseCache
from iml_ray.llm.errors import LLMUnavailable, OutOfTime
from iml_ray.llm.extract import estimate_tokens, message_text
from iml_ray.llm.ledger import Ledger
from iml_ray.llm.serving.local_model import is_local
from iml_ray.llm.settings import LLMSettings

log = logging.getLogger(__name__)

MAX_DELAY_S = 30.0
# Placeholder sent when OPENAI_API_KEY is unset: local servers ignore the key, openai's client insists on one.
NO_KEY = "not-needed"


@dataclass(frozen=True)
class Reply:
    text: str
    model: str              # the model asked for (the key of settings.prices), not the server's dated alias
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float         # what this call spent: 0 for a cached reply
    cached: bool
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


class Limiter(Protocol):
    def acquire(self) -> Any: ...
    def release(self) -> Any: ...


class LLMClient:
    def __init__(self, settings: LLMSettings, ledger: Ledger | None = None, limiter: Limiter | None = None,
                 servers: dict[str, Any] | None = None):
        self.settings = settings
        # local:... model -> its server (the cluster's actor, blocking); a missing one is started in this process.
        self.servers = dict(servers or {})
        # Without a ledger of its own the client still honours the caps in its settings.
        self.ledger = ledger if ledger is not None else Ledger(settings.max_cost_usd, settings.max_tokens)
        self.limiter = limiter
        self.cache = ResponseCache(settings.cache_dir, replay=settings.replay) if settings.cache_dir else None
        self._openai: Any = None
        self._build_lock = threading.Lock()

    def __getstate__(self) -> dict:
        # The HTTP client holds the key and sockets: rebuild it on the other side instead of shipping it.
        state = self.__dict__.copy()
        state["_openai"] = None
        # A server started in this process stays here; actor handles travel.
        state["servers"] = {m: h for m, h in self.servers.items() if type(h).__name__ != "InProcessServer"}
        del state["_build_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_lock = threading.Lock()

    def chat(self, agent: str, messages: list[dict], deadline: float | None = None,
             cache_as: list[dict] | None = None, **params: Any) -> Reply:
        """Ask the agent's model; raises BudgetExceeded or LLMUnavailable (LLMError), or CacheMiss in strict replay.

        `params` go to chat.completions.create as they are (e.g. response_format, seed);
        a `model=` among them overrides the agent's model. `cache_as`: the messages the reply is cached under, when
        the ones sent hold facts that change from run to run (the seconds left), so a rerun finds it.
        """
        model = params.pop("model", None) or self.settings.model_for(agent)
        left = self.ledger.check()          # one round trip to a ledger actor: the caps and the time left
        if deadline is not None:
            if deadline - time.time() < 1.0:
                raise OutOfTime("no time left for the LLM in this call's share (the code needs the rest to run)")
            left = deadline - time.time() if left is None else min(left, deadline - time.time())
        # A request never outlasts the time the LLM has left (a slow model must not eat the tracks' time).
        timeout_s = self.settings.timeout_s if left is None else max(1.0, min(self.settings.timeout_s, left))
        request = {"temperature": self.settings.temperature, **params}
        if "max_completion_tokens" not in params:
            request.setdefault("max_tokens", self.settings.max_output_tokens)

        key = ResponseCache.key(model, cache_as or messages, request) if self.cache else None
        if self.cache and key:
            started = time.monotonic()
            hit = self.cache.get(key)        # CacheMiss in replay mode
            if hit is not None:
                return self._cached_reply(agent, model, hit, time.monotonic() - started)

        request_for = self._local_request if is_local(model) else self._request
        try:
            text, prompt_tokens, completion_tokens, finish_reason, seconds, attempt = \
                request_for(agent, model, messages, request, timeout_s)
        except LLMUnavailable as exc:
            mark_down = getattr(self.ledger, "mark_down", None)
            if mark_down is not None:
                mark_down(str(exc))
            raise
        cost = self.settings.cost(model, prompt_tokens, completion_tokens)
        self.ledger.record(agent, model, prompt_tokens, completion_tokens, cost, cached=False, seconds=seconds)
        log.info("llm %s: %s answered %d+%d tokens, $%.4f, %.1fs, attempt %d",
                 agent, model, prompt_tokens, completion_tokens, cost, seconds, attempt)
        if finish_reason == "length":
            log.warning("llm %s: %s stopped at max_tokens=%s; the answer is cut off",
                        agent, model, request.get("max_tokens", request.get("max_completion_tokens")))
        if self.cache and key:
            self.cache.put(key, {"text": text, "model": model, "prompt_tokens": prompt_tokens,
                                 "completion_tokens": completion_tokens, "finish_reason": finish_reason})
        return Reply(text, model, prompt_tokens, completion_tokens, cost, cached=False, seconds=seconds)

    def _cached_reply(self, agent: str, model: str, hit: dict, seconds: float) -> Reply:
        prompt_tokens = int(hit.get("prompt_tokens", 0))
        completion_tokens = int(hit.get("completion_tokens", 0))
        self.ledger.record(agent, model, prompt_tokens, completion_tokens, 0.0, cached=True, seconds=seconds)
        log.debug("llm %s: %s answered from the cache", agent, model)
        return Reply(str(hit.get("text", "")), model, prompt_tokens, completion_tokens, 0.0, cached=True, seconds=seconds)

    def _request(self, agent: str, model: str, messages: list[dict], request: dict,
                 timeout_s: float | None = None) -> tuple[str, int, int, str | None, float, int]:
        """(text, prompt tokens, completion tokens, finish reason, seconds, attempt) of the first attempt that succeeds."""
        import openai

        client = self._client()
        attempts = self.settings.max_retries + 1
        failure = ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            started = time.monotonic()
            try:
                with self._limited():
                    started = time.monotonic()
                    completion = client.chat.completions.create(model=model, messages=messages,
                                                                timeout=timeout_s or self.settings.timeout_s, **request)
            except openai.APITimeoutError:
                failure = f"timed out after {timeout_s or self.settings.timeout_s:g} s"
                if timeout_s and timeout_s < self.settings.timeout_s:
                    # Cut short by the LLM's deadline: not the endpoint's fault, and no time to retry.
                    raise OutOfTime(f"LLM endpoint {self.settings.endpoint_host()}: {failure} (the LLM's time was up)") from None
            except openai.APIConnectionError as exc:
                failure = f"connection failed ({self._redact(str(exc.__cause__ or exc))})"
            except openai.APIStatusError as exc:
                failure = f"HTTP {exc.status_code}: {self._server_message(exc)}"
                if not _retryable_status(exc.status_code):
                    break
                retry_after = _retry_after_s(exc.response.headers)
            except openai.OpenAIError as exc:
                # A reply the SDK cannot read (not JSON, wrong shape): retrying would get the same.
                failure = f"unreadable reply ({type(exc).__name__}: {self._redact(str(exc))})"
                break
            else:
                seconds = time.monotonic() - started
                try:
                    return (*self._unpack(completion, messages), seconds, attempt)
                except (AttributeError, IndexError, TypeError) as exc:
                    failure = f"unreadable reply ({type(exc).__name__}: {self._redact(str(exc))})"
                    break
            if attempt == attempts:
                break
            delay = self._delay(attempt, retry_after)
            log.warning("llm %s: %s %s on attempt %d/%d; retrying in %.2fs",
                        agent, model, failure, attempt, attempts, delay)
            time.sleep(delay)
        # Raised outside the except blocks: no chained openai exception carries the request or server text along.
        raise LLMUnavailable(self._unavailable_message(failure, attempt))

    def _local_request(self, agent: str, model: str, messages: list[dict], request: dict,
                       timeout_s: float | None = None) -> tuple[str, int, int, str | None, float, int]:
        """The same answer from the model's server on the cluster: one attempt (a retry would queue behind itself)."""
        server = self._server(model)
        max_tokens = int(request.get("max_completion_tokens") or request.get("max_tokens") or self.settings.max_output_tokens)
        started = time.monotonic()
        timeout_s = timeout_s or self.settings.timeout_s
        try:
            answer = server.chat(messages, max_tokens, float(request.get("temperature") or 0.0), request.get("seed"),
                                 timeout_s=timeout_s)
        except TimeoutError as exc:
            if timeout_s < self.settings.timeout_s:
                # Cut short by the LLM's deadline, not a sign the server is broken: later calls may still go.
                raise OutOfTime(f"local model: {exc} (the LLM's time was up)") from None
            raise LLMUnavailable(f"local model {model[len('local:'):]}: {exc}; raise llm timeout_s for a slow model") from None
        except Exception as exc:   # the actor died or the call failed: the rules take over
            last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise LLMUnavailable(f"local model {model[len('local:'):]}: {self._redact(last)}") from None
        return (str(answer["text"]), int(answer["prompt_tokens"]), int(answer["completion_tokens"]),
                answer.get("finish_reason"), time.monotonic() - started, 1)

    def _server(self, model: str) -> Any:
        if model not in self.servers:
            from iml_ray.llm.serving.local_server import in_process_server

            s = self.settings
            self.servers[model] = in_process_server(model, max_batch=s.local_max_batch, batch_wait_s=s.local_batch_wait_s,
                                                    threads=s.local_threads or None,
                                                    backend=s.local_backend, repetition_penalty=s.local_repetition_penalty)
        return self.servers[model]

    def _unpack(self, completion: Any, messages: list[dict]) -> tuple[str, int, int, str | None]:
        choice = completion.choices[0]
        text = choice.message.content or ""
        usage = getattr(completion, "usage", None)
        if usage is not None and usage.prompt_tokens is not None:
            prompt_tokens, completion_tokens = int(usage.prompt_tokens), int(usage.completion_tokens or 0)
        else:
            # Some local servers report no usage; an estimate keeps budgets meaningful.
            prompt_tokens, completion_tokens = estimate_tokens(message_text(messages)), estimate_tokens(text)
        return text, prompt_tokens, completion_tokens, choice.finish_reason

    def _client(self) -> Any:
        with self._build_lock:
            if self._openai is None:
                import openai

                try:
                    self._openai = openai.OpenAI(
                        base_url=self.settings.base_url,
                        api_key=os.environ.get("OPENAI_API_KEY") or NO_KEY,
                        timeout=self.settings.timeout_s,
                        max_retries=0,
                    )
                except openai.OpenAIError as exc:
                    failure = f"cannot build the client ({self._redact(str(exc))})"
                else:
                    failure = ""
                if failure:
                    raise LLMUnavailable(f"LLM endpoint {self.settings.endpoint_host()}: {failure}")
            return self._openai

    @contextmanager
    def _limited(self) -> Iterator[None]:
        if self.limiter is None:
            yield
            return
        self.limiter.acquire()
        try:
            yield
        finally:
            self.limiter.release()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_DELAY_S)
        # Jitter keeps workers that failed together from retrying together.
        backoff = self.settings.backoff_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
        return min(backoff, MAX_DELAY_S)

    def _unavailable_message(self, failure: str, attempts: int) -> str:
        host = self.settings.endpoint_host()
        hint = ""
        if failure.startswith("HTTP 401") or failure.startswith("HTTP 403"):
            hint = "; check OPENAI_API_KEY"
        elif failure.startswith("HTTP 404"):
            hint = f"; check the model name and that {host} serves /chat/completions"
        return f"LLM endpoint {host} failed after {attempts} attempt(s): {failure}{hint}"

    def _server_message(self, exc: Any) -> str:
        body = exc.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = inner.get("message") if isinstance(inner, dict) else inner
        else:
            message = body
        return self._redact(str(message or exc.message or "no message"))

    @staticmethod
    def _redact(text: str) -> str:
        """One short line with anything key-like removed: servers echo (parts of) bad keys back."""
        key = os.environ.get("OPENAI_API_KEY")
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        text = re.sub(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*.]{3,}", r"\1-***", text)
        text = re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)
        text = " ".join(text.split())
        return text if len(text) <= 200 else text[:197] + "..."


def _retryable_status(status: int) -> bool:
    # 408 is the server saying the request timed out: treated like a client timeout.
    return status in (408, 429) or status >= 500


def _retry_after_s(headers: Any) -> float | None:
    """Seconds asked for by Retry-After (seconds or an HTTP date) or retry-after-ms; None when absent."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return when.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
