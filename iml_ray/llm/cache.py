"""ResponseCache: LLM replies on disk, addressed by a hash of the request.

A rerun with the same prompts costs nothing, and `replay` mode makes a run
reproducible offline: every answer must come from the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from iml_ray.llm.errors import CacheMiss

log = logging.getLogger(__name__)

# Bumped when the layout of an entry changes; older entries then read as misses.
FORMAT = 1


class ResponseCache:
    def __init__(self, directory: str | Path, replay: bool = False):
        self.directory = Path(directory)
        self.replay = replay

    @staticmethod
    def key(model: str, messages: list[dict], params: dict) -> str:
        canonical = json.dumps({"model": model, "messages": messages, "params": params},
                               sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        # Two levels of fan-out keep directories small after many thousands of replies.
        return self.directory / key[:2] / key[2:4] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The cached response, None when absent; in replay mode an absent entry raises CacheMiss."""
        response = self._read(self.path(key))
        if response is None and self.replay:
            raise CacheMiss(f"--llm-replay: replay mode: no cached LLM response {key[:12]} in {self.directory}; "
                            "run once without replay to record it")
        return response

    def put(self, key: str, response: dict) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: a reader (or a crash) never sees half an entry.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:12]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": FORMAT, "response": response}, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self, path: Path) -> dict | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("LLM cache entry %s unreadable (%s); treated as a miss", path, exc)
            return None
        try:
            entry: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            log.warning("LLM cache entry %s is corrupt (%s); treated as a miss", path, exc)
            return None
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT and isinstance(entry.get("response"), dict)):
            log.warning("LLM cache entry %s has an unknown layout; treated as a miss", path)
            return None
        return entry["response"]
