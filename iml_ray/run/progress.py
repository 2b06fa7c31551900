"""Live progress of a run: phase, tracks, repair rounds, elapsed against the budget."""
from __future__ import annotations

import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Progress(Protocol):
    def phase(self, name: str) -> None: ...
    def tracks(self, snapshot: dict[str, dict[str, Any]]) -> None: ...
    def close(self) -> None: ...


class LogProgress:
    """For pipes and CI: one log line per change, nothing redrawn."""

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.started = time.time()
        self._last: dict[str, tuple] = {}

    def phase(self, name: str) -> None:
        log.info("[%5.0fs/%.0fs] %s", time.time() - self.started, self.budget_s, name)

    def tracks(self, snapshot: dict[str, dict[str, Any]]) -> None:
        for track, s in snapshot.items():
            key = (s["phase"], s["round"])
            if self._last.get(track) != key:
                self._last[track] = key
                score = "" if s.get("score") is None else f" score {s['score']:.5g}"
                log.info("[%5.0fs/%.0fs] track %s: %s (round %d)%s", time.time() - self.started, self.budget_s,
                         track, s["phase"], s["round"], score)

    def close(self) -> None:
        pass


class RichProgress:
    """A live table on a terminal, redrawn in place."""

    def __init__(self, budget_s: float, console=None):
        from rich.console import Console
        from rich.live import Live

        self.budget_s = budget_s
        self.started = time.time()
        self.console = console or Console(stderr=True)
        self._phase = "starting"
        self._snapshot: dict[str, dict[str, Any]] = {}
        self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False,
                          get_renderable=self._render)
        self._live.start()

    def _render(self):
        from rich.table import Table

        elapsed = time.time() - self.started
        table = Table(title=f"iml-ray · {self._phase} · {elapsed:.0f}s / {self.budget_s:.0f}s", title_justify="left",
                      expand=False)
        for column in ("track", "phase", "round", "score", "elapsed", "detail"):
            table.add_column(column)
        for track, s in self._snapshot.items():
            score = "" if s.get("score") is None else f"{s['score']:.5g}"
            table.add_row(track, s["phase"], str(s["round"]), score, f"{s['elapsed']:.0f}s", (s.get("detail") or "")[:60])
        return table

    def phase(self, name: str) -> None:
        self._phase = name

    def tracks(self, snapshot: dict[str, dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def close(self) -> None:
        self._live.stop()

