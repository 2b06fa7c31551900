"""Ledger: what the LLM calls of one competition spent, per agent, against its caps; what came from the LLM and
what fell back to the rules (the events); how many Debugger rewrites the competition has used.

The agents keep nothing of a competition between calls (they serve every competition of a job), so what must last
over a competition's calls lives here, in the competition's own ledger.

Thread-safe: one ledger is shared by the threads of a threaded Ray actor.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from iml_ray.llm.errors import BudgetExceeded, LLMUnavailable, OutOfTime

# Counters kept per agent and in total; "requests" counts replies fetched from the
# endpoint, "cache_hits" replies served from the cache (they spend nothing).
COUNTERS = ("prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "requests", "cache_hits", "seconds")


def _zero() -> dict[str, Any]:
    return {name: 0.0 if name in ("cost_usd", "seconds") else 0 for name in COUNTERS}


class Ledger:
    def __init__(self, max_cost_usd: float | None = None, max_tokens: int | None = None):
        self.max_cost_usd = max_cost_usd
        self.max_tokens = max_tokens
        self._agents: dict[str, dict[str, Any]] = {}
        self._models: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        # Set when a call gave up on the endpoint after its retries: later calls of the competition go
        # straight to the rules instead of each spending its own retries on a dead endpoint.
        self.down: str | None = None
        # Wall-clock time (epoch s) after which no new request starts: the engine moves it from the end of the
        # plan phase's share to the end of exploration, so a slow model never eats the tracks' time.
        self.deadline: float | None = None
        self.deadline_why = ""
        self.out_of_time = 0
        self._events: list[dict] = []
        self._rewrites = 0

    def __getstate__(self) -> dict:
        with self._lock:
            state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def check(self) -> float | None:
        """Raise BudgetExceeded once the spend reached a cap (OutOfTime past the deadline); else the seconds
        left until the deadline (None without one), so a request's timeout never outlasts it.

        Checked before a request, so requests already in flight may overshoot a cap
        by at most `concurrency` replies.
        """
        if self.down:
            raise LLMUnavailable(f"the endpoint was given up on earlier in this competition ({self.down})")
        if self.deadline is not None and time.time() >= self.deadline:
            with self._lock:
                self.out_of_time += 1
            raise OutOfTime(f"no time left for the LLM {self.deadline_why}".rstrip())
        reason = self._exhausted_reason(self.totals())
        if reason:
            raise BudgetExceeded(f"LLM budget reached: {reason}; raise the cap or let the rules policy finish the run")
        return self.remaining_s()

    def record(self, agent: str, model: str, prompt_tokens: int, completion_tokens: int,
               cost_usd: float, cached: bool, seconds: float = 0.0) -> None:
        with self._lock:
            row = self._agents.setdefault(agent, _zero())
            self._models.setdefault(agent, set()).add(model)
            row["seconds"] += seconds
            if cached:
                row["cache_hits"] += 1
                return
            row["requests"] += 1
            row["prompt_tokens"] += prompt_tokens
            row["completion_tokens"] += completion_tokens
            row["total_tokens"] += prompt_tokens + completion_tokens
            row["cost_usd"] += cost_usd

    def note(self, event: dict) -> None:
        """An agent's event for the report (what came from the LLM, what fell back to the rules and why)."""
        with self._lock:
            self._events.append(dict(event))

    def events(self) -> list[dict]:
        with self._lock:
            return sorted(self._events, key=lambda e: e.get("at", 0.0))

    def take_rewrite(self, cap: int) -> bool:
        """One of the competition's `cap` Debugger rewrites, if any is left."""
        with self._lock:
            if self._rewrites >= cap:
                return False
            self._rewrites += 1
            return True

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return _sum(self._agents.values())

    def by_agent(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {agent: {**row, "models": sorted(self._models.get(agent, ()))}
                    for agent, row in sorted(self._agents.items())}

    def exhausted(self) -> bool:
        return self._exhausted_reason(self.totals()) is not None

    def set_deadline(self, deadline: float | None, why: str = "") -> None:
        with self._lock:
            self.deadline, self.deadline_why = deadline, why

    def remaining_s(self) -> float | None:
        """Seconds until the deadline (None without one): a request's timeout never outlasts it."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    def mark_down(self, reason: str) -> None:
        with self._lock:
            self.down = self.down or reason[:300]

    def to_json(self) -> dict:
        totals = self.totals()
        return {
            "down": self.down,
            "totals": totals,
            "agents": self.by_agent(),
            "caps": {"max_cost_usd": self.max_cost_usd, "max_tokens": self.max_tokens},
            "exhausted": self._exhausted_reason(totals) is not None,
            "out_of_time": self.out_of_time,      # requests not started because the LLM's time was up
        }

    @staticmethod
    def merge(reports: list[dict]) -> dict:
        """Sum several `to_json()` outputs, e.g. the ledgers of a batch's competitions.

        The merged caps are the sums of the caps (None when any report had no cap);
        `exhausted` says whether any competition hit its own cap.
        """
        agents: dict[str, dict[str, Any]] = {}
        for report in reports:
            for agent, row in report.get("agents", {}).items():
                merged = agents.setdefault(agent, {**_zero(), "models": []})
                for name in COUNTERS:
                    merged[name] += row.get(name, 0)
                merged["models"] = sorted(set(merged["models"]) | set(row.get("models", ())))
        caps: dict[str, Any] = {}
        for name in ("max_cost_usd", "max_tokens"):
            values = [report.get("caps", {}).get(name) for report in reports]
            caps[name] = sum(values) if values and None not in values else None
        return {
            "totals": _sum(report.get("totals", {}) for report in reports),
            "agents": dict(sorted(agents.items())),
            "caps": caps,
            "exhausted": any(report.get("exhausted", False) for report in reports),
            "runs": len(reports),
        }

    def _exhausted_reason(self, totals: dict[str, Any]) -> str | None:
        if self.max_tokens is not None and totals["total_tokens"] >= self.max_tokens:
            return f"{totals['total_tokens']:,} tokens of {self.max_tokens:,} allowed"
        if self.max_cost_usd is not None and totals["cost_usd"] >= self.max_cost_usd:
            return f"${totals['cost_usd']:.4f} of ${self.max_cost_usd:.4f} allowed"
        return None


def _sum(rows) -> dict[str, Any]:
    total = _zero()
    for row in rows:
        for name in COUNTERS:
            total[name] += row.get(name, 0)
    return total
