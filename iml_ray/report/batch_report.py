"""report.html of a batch: one row per competition, linking to its own report, and the batch's throughput.

Same rules as a run's page (iml_ray/report/html.py): self-contained, no network.
"""
from __future__ import annotations

import json
from pathlib import Path

from iml_ray.report.html import CSS
from iml_ray.report.svg import bar_chart, esc, timeline


def render_batch_report(root: Path) -> str:
    root = Path(root)
    summary = json.loads((root / "batch.json").read_text())
    comps = summary.get("competitions", [])
    llm = summary.get("llm") or {}
    with_llm = llm.get("tokens", 0) > 0
    rows = []
    for c in comps:
        name = c["name"]
        link = f"<a href='{esc(name)}/report.html'>{esc(name)}</a>" if (root / name / "report.html").exists() else esc(name)
        status = c.get("status", "pending")
        css = "ok" if status in ("ok", "skipped") and not c.get("error") else ("failed" if status == "failed" else "muted")
        score = "" if c.get("valid_score") is None else f"{c['valid_score']:.5g}"
        cells = [link, f"<span class='{css}'>{esc(status)}</span>", esc(c.get("metric") or ""), score,
                 f"{c.get('wall_s', 0):.0f}"]
        if with_llm:
            cells += [esc(c.get("llm_tokens", 0)), f"${c.get('llm_cost_usd', 0.0):.4f}"]
        rows.append(cells + [esc(c.get("error") or ("resumed" if c.get("resumed") else ""))])
    header = ["competition", "status", "metric", "validation score", "wall (s)"] + \
             (["LLM tokens", "LLM cost"] if with_llm else []) + ["note"]
    table = "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" + \
        "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows) + "</table>"
    ok = summary.get("ok", 0)
    headline = (f"{len(comps)} competitions, <span class='{'ok' if ok == len(comps) else 'failed'}'>{ok} with a verified "
                f"submission</span> · {summary.get('wall_s', 0):.0f} s · {summary.get('throughput_per_hour', 0):.1f} "
                f"finished per hour" + (f" · {llm['tokens']} LLM tokens, ${llm.get('cost_usd', 0.0):.4f}" if with_llm else ""))
    spans = [(c["name"], c["started_s"], c["started_s"] + c.get("wall_s", 0), [])
             for c in comps if c.get("started_s") is not None and c.get("wall_s")]
    walls = [(c["name"], float(c.get("wall_s", 0))) for c in comps if c.get("wall_s")]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
            f"<title>iml-ray batch · {esc(root.name)}</title><style>{CSS}</style></head><body>"
            f"<h1>iml-ray batch: {esc(root.name)}</h1><p id='headline'>{headline}</p>"
            f"<section id='competitions'><h2>Competitions</h2>{table}"
            "<p class='muted'>Each name opens that competition's own report. Scores are iml-ray's, on each task's own "
            "holdout; 'skipped' competitions had finished in an earlier invocation of the same batch.</p></section>"
            f"<section id='throughput'><h2>When each ran</h2>{timeline(spans)}"
            f"{bar_chart(walls, unit=' s', title='wall time per competition', fmt='{:.0f}') if walls else ''}"
            "<p class='muted'>Overlapping bars are competitions that ran at once on the cluster.</p></section>"
            "</body></html>")


def write_batch_report(root: Path) -> Path | None:
    """ROOT/report.html beside batch.json; a failure here is logged, never fatal to the batch."""
    from iml_ray.report.run_report import write_page

    return write_page(Path(root) / "report.html", lambda: render_batch_report(root))
