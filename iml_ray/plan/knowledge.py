"""Match strategy cards against the task and its profile.

A card says when it applies (`when`), what to do (`advice`, for people and for
the LLM policy) and which settings it implies (`settings`, consumed by the rules
GuidelineAgent). Cards are merged in priority order, later cards overriding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from iml_ray.task.files import TaskSummary
from iml_ray.task.profile import Profile

CONDITIONS = {"tracks", "problem_type", "metric", "has_role", "min_rows", "max_rows", "imbalance_min",
              "any_missing", "max_categorical_unique_min", "target_skew_min"}


@dataclass(frozen=True)
class StrategyCard:
    id: str
    title: str
    advice: str
    when: dict[str, Any]
    settings: dict[str, dict[str, Any]]
    priority: int = 50


@dataclass(frozen=True)
class MatchedCard:
    card: StrategyCard
    why: str


@dataclass(frozen=True)
class Knowledge:
    cards: tuple[MatchedCard, ...] = field(default_factory=tuple)
    advice: str = ""          # the LLM KnowledgeRetriever's advice adapted to the task (llm policy only)

    def settings(self) -> dict[str, dict[str, Any]]:
        """All cards' settings merged section by section, higher priority last."""
        merged: dict[str, dict[str, Any]] = {}
        for matched in sorted(self.cards, key=lambda m: (m.card.priority, m.card.id)):
            for section, values in matched.card.settings.items():
                merged.setdefault(section, {}).update(values)
        return merged

    @property
    def card_ids(self) -> list[str]:
        return [m.card.id for m in self.cards]

    def to_json(self) -> dict:
        return {"cards": [{**asdict(m.card), "why": m.why} for m in self.cards], "advice": self.advice}

    @classmethod
    def from_json(cls, data: dict) -> "Knowledge":
        cards = []
        for item in data["cards"]:
            item = dict(item)
            why = item.pop("why")
            cards.append(MatchedCard(StrategyCard(**item), why))
        return cls(tuple(cards), data.get("advice", ""))


def load_cards() -> list[StrategyCard]:
    import yaml

    cards = []
    folder = resources.files(__package__).joinpath("cards")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(entry.read_text())
        unknown = set(data.get("when", {})) - CONDITIONS
        if unknown:
            raise ValueError(f"card {entry.name} has unknown conditions {sorted(unknown)}")
        cards.append(StrategyCard(id=data["id"], title=data["title"], advice=" ".join(data["advice"].split()),
                                  when=data.get("when", {}), settings=data.get("settings", {}),
                                  priority=int(data.get("priority", 50))))
    return cards


def retrieve(summary: TaskSummary, profile: Profile, tracks: tuple[str, ...],
             cards: list[StrategyCard] | None = None) -> Knowledge:
    matched = []
    for card in cards if cards is not None else load_cards():
        why = card_matches(card, summary, profile, tracks)
        if why is not None:
            matched.append(MatchedCard(card, why))
    return Knowledge(tuple(matched))


def card_matches(card: StrategyCard, summary: TaskSummary, profile: Profile, tracks: tuple[str, ...]) -> str | None:
    """Why the card applies (all its conditions hold), or None."""
    reasons = []
    for key, wanted in card.when.items():
        reason = _check(key, wanted, summary, profile, tracks)
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(reasons) or "always"


def _check(key: str, wanted: Any, summary: TaskSummary, profile: Profile, tracks: tuple[str, ...]) -> str | None:
    if key == "tracks":
        hit = [t for t in tracks if t in wanted]
        return f"track {hit[0]} runs" if hit else None
    if key == "problem_type":
        return f"{summary.problem_type} task" if summary.problem_type in wanted else None
    if key == "metric":
        return f"metric is {summary.metric}" if {summary.metric, summary.unit_metric} & set(wanted) else None
    if key == "has_role":
        cols = profile.columns_with_role(wanted)
        return f"{wanted} column(s): {', '.join(cols[:3])}" if cols else None
    if key == "min_rows":
        return f"{profile.n_train} rows ≥ {wanted}" if profile.n_train >= wanted else None
    if key == "max_rows":
        return f"{profile.n_train} rows ≤ {wanted}" if profile.n_train <= wanted else None
    if key == "imbalance_min":
        ratio = profile.target.imbalance_ratio
        return f"class imbalance {ratio:.1f}:1" if ratio is not None and ratio >= wanted else None
    if key == "any_missing":
        gaps = [c.name for c in profile.columns
                if c.role not in ("id", "constant") and max(c.missing_frac, c.missing_frac_test) > 0]
        if not gaps or bool(gaps) != bool(wanted):
            return None
        return f"missing values in {', '.join(gaps[:3])}{'…' if len(gaps) > 3 else ''}"
    if key == "max_categorical_unique_min":
        wide = [c for c in profile.columns if c.role == "categorical" and c.n_unique >= wanted]
        return f"categorical {wide[0].name} has {wide[0].n_unique} values" if wide else None
    if key == "target_skew_min":
        target = profile.target
        if target.skew is None or target.min is None or target.min < 0 or target.skew < wanted:
            return None
        return f"target skewed ({target.skew:.2f}), none below 0"
    raise ValueError(f"unknown card condition {key}")
