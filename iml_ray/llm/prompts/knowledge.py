"""KnowledgeRetriever prompt and the parser of its card choice."""
from __future__ import annotations

from ..errors import BadAnswer
from ..extract import extract_json
from . import render


def messages(task: dict, profile: dict, matched: list[dict], catalogue: list[dict]) -> list[dict]:
    return render("knowledge", task=task, profile=profile, matched=matched, catalogue=catalogue)


def parse(text: str, known: list[str]) -> tuple[list[str], str]:
    answer = extract_json(text)
    cards = answer.get("cards")
    if not isinstance(cards, list) or not all(isinstance(c, str) for c in cards):
        raise BadAnswer('"cards" must be a list of card ids')
    unknown = [c for c in cards if c not in known]
    if unknown:
        raise BadAnswer(f"unknown card id(s) {unknown}; the ids are {known}")
    return list(dict.fromkeys(cards)), str(answer.get("advice", ""))[:1500]
