"""KnowledgeRetriever: the strategy cards that fit the task, and advice for the Guideline.

Rules: `plan.knowledge.retrieve` matches the cards' conditions against the task
and its profile. LLM: the model picks from the whole catalogue and adds advice.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from iml_ray.agents.base import Agent
from iml_ray.agents.briefs import profile_brief, task_brief
from iml_ray.llm.errors import BadAnswer
from iml_ray.llm.extract import extract_json
from iml_ray.llm.prompt import render

if TYPE_CHECKING:
    from iml_ray.llm.brain import Brain
    from iml_ray.plan.knowledge import Knowledge
    from iml_ray.task.files import TaskSummary
    from iml_ray.task.profile import Profile


class KnowledgeRetriever(Agent):
    name = "knowledge_retriever"
    warm_imports = ("iml_ray.plan.knowledge",)
    prompt = "knowledge_retriever"

    def retrieve(self, summary: TaskSummary, profile: Profile, tracks: tuple[str, ...]) -> Knowledge:
        from iml_ray.plan.knowledge import retrieve

        knowledge = retrieve(summary, profile, tracks)
        chosen = self._with_llm("cards as matched", lambda brain: ask_llm(brain, summary, profile, knowledge))
        return knowledge if chosen is None else chosen


def ask_llm(brain: Brain, summary: TaskSummary, profile: Profile, matched: Knowledge) -> Knowledge:
    from iml_ray.plan.knowledge import Knowledge, MatchedCard, load_cards

    catalogue = load_cards()
    by_id = {c.id: c for c in catalogue}
    cards, advice = brain.ask(messages(task_brief(summary), profile_brief(profile),
                                       [{"id": m.card.id, "why": m.why} for m in matched.cards],
                                       [{"id": c.id, "title": c.title, "advice": c.advice, "when": c.when}
                                        for c in catalogue], profile.findings),
                              lambda text: parse(text, list(by_id)))
    why = {m.card.id: m.why for m in matched.cards}
    chosen = tuple(MatchedCard(by_id[i], why.get(i, "chosen by the LLM KnowledgeRetriever")) for i in cards)
    dropped = sorted(set(why) - set(cards))
    brain.note("llm", f"{len(chosen)} cards" + (f", dropped {dropped}" if dropped else ""))
    return Knowledge(chosen, advice)


def messages(task: dict, profile: dict, matched: list[dict], catalogue: list[dict], findings: dict | None = None
             ) -> list[dict]:
    return render(__package__, KnowledgeRetriever.prompt, task=task, profile=profile, matched=matched,
                  catalogue=catalogue, findings=findings or "(none)")


def parse(text: str, known: list[str]) -> tuple[list[str], str]:
    answer = extract_json(text)
    cards = answer.get("cards")
    if not isinstance(cards, list) or not all(isinstance(c, str) for c in cards):
        raise BadAnswer('"cards" must be a list of card ids')
    unknown = [c for c in cards if c not in known]
    if unknown:
        raise BadAnswer(f"unknown card id(s) {unknown}; the ids are {known}")
    return list(dict.fromkeys(cards)), str(answer.get("advice", ""))[:1500]
