"""Which metric a competition description names: an evaluation section first, else the earliest mention."""
from __future__ import annotations

import re

from iml_ray.metrics.registry import METRICS, map_metric, quantile_metric

_ORDER = tuple(METRICS.values())       # the registry's order breaks ties between phrases at one position

_PHRASE_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    metric.name: tuple(re.compile(rf"(?<!\w)(?:{phrase})(?!\w)", re.IGNORECASE) for phrase in metric.phrases)
    for metric in _ORDER
}
# The pinball loss names its quantile level nearby: "quantile 0.9", "alpha = 0.9", "the 90th percentile".
_QUANTILE_LOSS = re.compile(r"(?<!\w)(?:pinball|quantile)[ -]loss(?!\w)", re.IGNORECASE)
_QUANTILE_LEVELS = (
    re.compile(r"(?:quantile|percentile|tau|τ|alpha|α|level)\s*(?:level\s*)?(?:of\s*)?[=:]?\s*(0?\.\d+)(?!\d)", re.IGNORECASE),
    re.compile(r"(?<![\d.])(\d{1,2}(?:\.\d+)?)\s*(?:th|st|nd|rd)?[ -](?:percentile|quantile)", re.IGNORECASE),
)
# MAP@k names its k: "MAP@3", "Mean Average Precision @ 5", "mean average precision at 3".
_MAP_AT_K = re.compile(r"(?<!\w)(?:(?:mean[ -]average[ -]precision|map)\s*@\s*|mean[ -]average[ -]precision at\s*)"
                       r"(\d{1,2})(?!\d)", re.IGNORECASE)
_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})\s*(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)\s*$")
_EVALUATION_TITLE = re.compile(r"evaluat|metric|scoring", re.IGNORECASE)


def find_metric_in_text(text: str) -> str | None:
    """The canonical name of the metric a competition description names, or None.

    Evaluation sections (markdown headings mentioning evaluation, metric or
    scoring) are searched first, then the whole text; within a text the earliest
    phrase wins, and the longest of phrases starting at the same place.
    """
    if not text:
        return None
    for part in (*_evaluation_sections(text), text):
        found = _earliest_metric(part)
        if found:
            return found
    return None


def _earliest_metric(text: str) -> str | None:
    # Line breaks inside a phrase ("root mean\nsquared error") still match.
    text = re.sub(r"\s+", " ", text)
    best: tuple[int, int, int] | None = None     # (start, -length, registry position)
    for position, metric in enumerate(_ORDER):
        for pattern in _PHRASE_PATTERNS[metric.name]:
            match = pattern.search(text)
            if match:
                candidate = (match.start(), match.start() - match.end(), position)
                best = candidate if best is None else min(best, candidate)
    quantile = _QUANTILE_LOSS.search(text)
    at_k = _MAP_AT_K.search(text)
    if at_k is not None and int(at_k.group(1)) >= 1 and (best is None or at_k.start() <= best[0]) \
            and (quantile is None or at_k.start() < quantile.start()):
        return map_metric(int(at_k.group(1))).name
    if quantile is not None and (best is None or quantile.start() <= best[0]):
        return _quantile_named(text)
    return None if best is None else _ORDER[best[2]].name


def _quantile_named(text: str) -> str:
    """The pinball loss at the level the text gives (the median's 0.5 when it gives none)."""
    for pattern in _QUANTILE_LEVELS:
        for match in pattern.finditer(text):
            level = float(match.group(1))
            level = level / 100.0 if level >= 1.0 else level
            if 0.0 < level < 1.0:
                return quantile_metric(level).name
    return quantile_metric(0.5).name


def _evaluation_sections(text: str) -> list[str]:
    """Each section whose heading names evaluation, up to the next heading of its level or above."""
    lines = text.splitlines()
    headings = _headings(lines)
    sections = []
    for n, (start, level, title) in enumerate(headings):
        if _EVALUATION_TITLE.search(title):
            end = next((line for line, other, _ in headings[n + 1:] if other <= level), len(lines))
            sections.append("\n".join(lines[start:end]))
    return sections


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """Markdown headings as (line index, level, title): `# Title` and underlined titles."""
    found = []
    for i, line in enumerate(lines):
        atx = _ATX_HEADING.match(line)
        if atx:
            found.append((i, len(atx.group(1)), atx.group(2)))
            continue
        underline = _SETEXT_UNDERLINE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if underline and line.strip() and not _SETEXT_UNDERLINE.match(line):
            found.append((i, 1 if underline.group(1)[0] == "=" else 2, line.strip()))
    return found
