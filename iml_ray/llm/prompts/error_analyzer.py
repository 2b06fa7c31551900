"""ErrorAnalyzer prompt and the parser of its diagnosis."""
from __future__ import annotations

from ..errors import BadAnswer
from ..extract import extract_json
from . import render

BLAMES = ("prep", "model", "contract_fulfilment", "contract_usage", "resources")


def messages(stage: str, status: str, section: str, message: str, violations: list[str], log: str, contract: dict,
             sources: dict) -> list[dict]:
    return render("error_analyzer", stage=stage, status=status, section=section, message=message,
                  violations="\n".join(violations) or "(none)", log=log or "(empty)", contract=contract, sources=sources)


def parse(text: str) -> tuple[str, str]:
    answer = extract_json(text)
    blamed = answer.get("blamed")
    if blamed not in BLAMES:
        raise BadAnswer(f'"blamed" must be one of {list(BLAMES)}, not {blamed!r}')
    return blamed, str(answer.get("explanation", ""))[:500]
