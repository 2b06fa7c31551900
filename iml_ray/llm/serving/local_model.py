"""An open checkpoint on this machine, generating chat answers in batches.

`local:SOURCE` names the model: a directory of a transformers checkpoint, one
GGUF file, or a hub id (only where a hub is reachable). The transformers
generator runs anywhere (CPU or one GPU); vLLM is used instead when it is
installed and a GPU is present. Both take a batch of chats and return one
Generation per chat, with the tokens counted by the model's own tokenizer.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from iml_ray.errors import ConfigError

log = logging.getLogger(__name__)

PREFIX = "local:"


def is_local(model: str | None) -> bool:
    return bool(model) and str(model).startswith(PREFIX)


@dataclass(frozen=True)
class LocalSource:
    """Where a local model's weights are: a directory, a GGUF file in a directory, or a hub id."""

    source: str                 # what the user wrote after local:
    directory: str              # a checkpoint directory, or the hub id
    gguf_file: str | None       # the file name inside `directory` when the weights are one GGUF file
    on_disk: bool

    @classmethod
    def parse(cls, model: str) -> "LocalSource":
        """`local:SOURCE` → where to load it from; a path that does not exist is a ConfigError."""
        source = model[len(PREFIX):] if is_local(model) else model
        source = source.strip()
        if not source:
            raise ConfigError("--llm local: needs a model after the colon",
                              "Write e.g. --llm local:/models/qwen2.5-7b-instruct or --llm local:model.gguf.")
        path = Path(source).expanduser()
        if path.exists():
            path = path.resolve()
            if path.is_file():
                if path.suffix.lower() != ".gguf":
                    raise ConfigError(f"local model {source} is a file but not a GGUF file",
                                      "Pass a .gguf file or a checkpoint directory (with config.json).")
                return cls(source, str(path.parent), path.name, True)
            if not (path / "config.json").is_file():
                ggufs = sorted(p.name for p in path.glob("*.gguf"))
                if len(ggufs) == 1:
                    return cls(source, str(path), ggufs[0], True)
                raise ConfigError(f"local model directory {source} has no config.json"
                                  + (f" and {len(ggufs)} GGUF files" if ggufs else ""),
                                  "Pass a transformers checkpoint directory, or the one .gguf file to load.")
            return cls(source, str(path), None, True)
        looks_like_path = source.startswith(("/", ".", "~")) or source.lower().endswith(".gguf") or source.count("/") > 1
        if looks_like_path:
            raise ConfigError(f"local model {source} does not exist",
                              "Check the path (a checkpoint directory or a .gguf file), or give a hub id like org/name.")
        return cls(source, source, None, False)

    @property
    def name(self) -> str:
        return self.gguf_file or Path(self.directory).name or self.directory


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str          # "stop" or "length", as in the chat-completions protocol


class Generator(Protocol):
    backend: str
    device: str

    def generate(self, requests: list[ChatRequest], abandoned: Callable[[], bool] | None = None) -> list[Generation]:
        """One answer per request; `abandoned()` turning true (every caller gave up) may end the call early."""


def load_generator(source: LocalSource, threads: int | None = None, prefer: str = "auto",
                   repetition_penalty: float | None = None) -> Generator:
    """vLLM when it is installed and a GPU is present (and prefer allows), transformers otherwise."""
    if prefer in ("auto", "vllm") and _cuda_available():
        try:
            import vllm  # noqa: F401
        except ImportError:
            if prefer == "vllm":
                raise ConfigError("local model backend vllm is not installed",
                                  "pip install vllm, or set local_backend: auto.") from None
        else:
            return VLLMGenerator(source, repetition_penalty)
    if prefer == "vllm":
        raise ConfigError("local model backend vllm needs a GPU and none is visible", "Set local_backend: auto.")
    return TransformersGenerator(source, threads, repetition_penalty)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TransformersGenerator:
    """transformers' generate() over a left-padded batch; greedy when temperature is 0."""

    backend = "transformers"

    def __init__(self, source: LocalSource, threads: int | None = None, repetition_penalty: float | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        kwargs: dict[str, Any] = {"gguf_file": source.gguf_file} if source.gguf_file else {}
        if source.on_disk:
            kwargs["local_files_only"] = True
        started = time.monotonic()
        self.tokenizer = AutoTokenizer.from_pretrained(source.directory, **kwargs)
        # Batches are padded on the left so every row's answer starts at the same position.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(source.directory, dtype=dtype, **kwargs).to(self.device)
        self.model.eval()
        self.repetition_penalty = repetition_penalty
        self.context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        log.info("local model %s loaded with transformers on %s in %.1fs", source.name, self.device,
                 time.monotonic() - started)

    def generate(self, requests: list[ChatRequest], abandoned: Callable[[], bool] | None = None) -> list[Generation]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        prompts = [self._prompt(r.messages) for r in requests]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        longest = max(lengths)
        max_new = max(r.max_tokens for r in requests)
        if self.context:
            if longest >= self.context:
                raise ValueError(f"prompt of {longest} tokens does not fit the model's context of {self.context}")
            max_new = min(max_new, self.context - longest)
        sampled = any(r.temperature > 0 for r in requests)
        settings: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": sampled,
                                    "pad_token_id": self.tokenizer.pad_token_id}
        if sampled:
            # One batch shares its sampling settings: the server only batches requests that agree.
            settings["temperature"] = requests[0].temperature
            if requests[0].seed is not None:
                torch.manual_seed(requests[0].seed)
        else:
            settings.update(temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty:
            settings["repetition_penalty"] = self.repetition_penalty
        start = batch["input_ids"].shape[1]
        guard = LoopGuard(start)
        criteria = [guard]
        if abandoned is not None:
            class Abandoned(StoppingCriteria):
                def __call__(self, input_ids, scores, **kwargs):
                    return torch.full((input_ids.shape[0],), bool(abandoned()), dtype=torch.bool, device=input_ids.device)

            criteria.append(Abandoned())
        settings["stopping_criteria"] = StoppingCriteriaList(criteria)
        with torch.inference_mode():
            output = self.model.generate(**batch, **settings)
        answers = output[:, start:].tolist()
        stops = self._stop_ids()
        return [self._answer(tokens, prompt_tokens, r.max_tokens, stops, looped=row in guard.looped)
                for row, (tokens, prompt_tokens, r) in enumerate(zip(answers, lengths, requests))]

    def _prompt(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # A base model without a chat template: a plain transcript it can continue.
        lines = [f"{m.get('role', 'user')}: {_content_text(m.get('content'))}" for m in messages]
        return "\n\n".join(lines) + "\n\nassistant:"

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def _answer(self, tokens: list[int], prompt_tokens: int, max_tokens: int, stops: set[int],
                looped: bool = False) -> Generation:
        end = next((i for i, token in enumerate(tokens) if token in stops), None)
        if looped:
            kept, reason = tokens[:min(end if end is not None else len(tokens), max_tokens)], "length"
        elif end is not None and end <= max_tokens:
            kept, reason = tokens[:end], "stop"
        else:
            # A row of the batch may run past its own max_tokens while a longer one finishes: cut it there.
            kept, reason = tokens[:max_tokens], "length"
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Generation(text, int(prompt_tokens), len(kept), reason)


class VLLMGenerator:
    """vLLM's offline engine: it schedules the batch itself (paged attention, continuous batching)."""

    backend = "vllm"
    device = "cuda"

    def __init__(self, source: LocalSource, repetition_penalty: float | None = None):
        from vllm import LLM

        self.repetition_penalty = repetition_penalty
        started = time.monotonic()
        model = os.path.join(source.directory, source.gguf_file) if source.gguf_file else source.directory
        self.llm = LLM(model=model, gpu_memory_utilization=float(os.environ.get("IML_VLLM_GPU_MEMORY", "0.85")))
        log.info("local model %s loaded with vLLM in %.1fs", source.name, time.monotonic() - started)

    def generate(self, requests: list[ChatRequest], abandoned: Callable[[], bool] | None = None) -> list[Generation]:
        from vllm import SamplingParams

        extra = {"repetition_penalty": self.repetition_penalty} if self.repetition_penalty else {}
        params = [SamplingParams(max_tokens=r.max_tokens, temperature=r.temperature, seed=r.seed, **extra)
                  for r in requests]
        outputs = self.llm.chat([r.messages for r in requests], sampling_params=params, use_tqdm=False)
        results = []
        for output in outputs:
            answer = output.outputs[0]
            results.append(Generation(answer.text, len(output.prompt_token_ids or ()), len(answer.token_ids),
                                      "length" if answer.finish_reason == "length" else "stop"))
        return results


class LoopGuard:
    """Stops a row whose answer went round in circles: its last `window` tokens already occurred `repeats`
    times. Small models do this under greedy decoding; the rest of max_tokens would be spent on the loop."""

    def __init__(self, start: int, window: int = 32, repeats: int = 3, every: int = 8):
        self.start, self.window, self.repeats, self.every = start, window, repeats, every
        self.looped: set[int] = set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        generated = input_ids.shape[1] - self.start
        if generated < self.window * self.repeats or generated % self.every:
            return done
        for row, tokens in enumerate(input_ids[:, self.start:].tolist()):
            if row in self.looped:
                done[row] = True
            elif repeated(tokens, self.window, self.repeats):
                self.looped.add(row)
                done[row] = True
        return done


def repeated(tokens: list[int], window: int, repeats: int) -> bool:
    """Whether the last `window` tokens occur at least `repeats` times in `tokens`."""
    tail = tokens[-window:]
    first = tail[0]
    count = 0
    for i in range(len(tokens) - window + 1):
        if tokens[i] == first and tokens[i:i + window] == tail:
            count += 1
            if count >= repeats:
                return True
    return False


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")
