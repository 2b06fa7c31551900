"""Bounded concurrency towards one LLM endpoint, shared by every competition on the cluster.

Plain asyncio (a Ray actor in actors/llm.py serves it to every agent of every
run). A slot held longer than `lease_s` is taken back: a client that died while
holding one must not shrink the endpoint's capacity for the rest of the batch.
"""
from __future__ import annotations

import asyncio
import time


class EndpointLimiter:
    def __init__(self, concurrency: int = 4, lease_s: float = 600.0):
        self.concurrency = max(1, int(concurrency))
        self.lease_s = lease_s
        self._held: list[float] = []          # start times of the slots in use
        self._changed: asyncio.Condition | None = None
        self.served = 0
        self.peak = 0
        self.waited_s = 0.0

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:              # created inside the running event loop
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self) -> None:
        changed = self._condition()
        started = time.monotonic()
        async with changed:
            while True:
                now = time.monotonic()
                self._held = [t for t in self._held if now - t < self.lease_s]
                if len(self._held) < self.concurrency:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
            self._held.append(time.monotonic())
            self.served += 1
            self.peak = max(self.peak, len(self._held))
            self.waited_s += time.monotonic() - started

    async def release(self) -> None:
        changed = self._condition()
        async with changed:
            if self._held:
                self._held.pop(0)
            changed.notify_all()

    async def stats(self) -> dict:
        return {"concurrency": self.concurrency, "in_use": len(self._held), "served": self.served, "peak": self.peak,
                "waited_s": round(self.waited_s, 2)}
