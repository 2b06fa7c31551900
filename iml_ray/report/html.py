"""report.html: one self-contained page a person reads instead of the JSON.

Everything is inline (CSS, SVG charts, the code); a Content-Security-Policy
forbids every network request, so the page opens the same from a laptop, a
cluster's shared disk or an e-mail attachment.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iml_ray.report.svg import PALETTE, bar_chart, esc, heatmap, line_chart, scatter, timeline

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1b1f24}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.ok{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.muted{color:#57606a}pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:480px;font-size:12px}
details{margin:4px 0}summary{cursor:pointer}.grid{display:flex;flex-wrap:wrap;gap:24px}
.badge{display:inline-block;padding:1px 6px;border-radius:8px;background:#ddf4ff;font-size:12px}
"""
# ------------------------------------------------------------------ the page


def load_run(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    data: dict[str, Any] = {"report": json.loads((run_dir / "report.json").read_text())}
    for name in ("task_summary", "profile", "knowledge", "blueprint", "contract"):
        path = run_dir / "plan" / f"{name}.json"
        data[name] = json.loads(path.read_text()) if path.exists() else None
    state = run_dir / "state.json"
    data["state"] = json.loads(state.read_text()) if state.exists() else {}
    return data


def render_run_report(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    report = data["report"]
    task = report["task"]
    sections = [
        _section("task", "The task", _task_section(report)),
        _section("profile", "What the data holds", _profile_section(data["profile"])),
        _section("plan", "The plan", _plan_section(data)),
        _section("timeline", "Timeline", _timeline_section(data)),
        _section("leaderboard", "Leaderboard", _leaderboard_section(report, run_dir)),
        _section("diagnostics", "Validation diagnostics of the winner", _diagnostics_section(report, run_dir, data)),
        _section("cost", "LLM tokens and cost", _cost_section(report)),
    ]
    status = report["status"]
    chosen = report.get("chosen")
    headline = (f"<span class='ok'>verified</span> — {esc(chosen['track'])}, validation {esc(task['metric'])} = "
                f"{chosen['valid_score']:.5g}" if status == "ok" and chosen
                else "<span class='failed'>no verified candidate</span>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='Content-Security-Policy' "
            "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
            f"<title>iml-ray · {esc(task['name'])}</title><style>{CSS}</style></head><body>"
            f"<h1>iml-ray run: {esc(task['name'])}</h1><p id='headline'>{headline} "
            f"<span class='muted'>· {report['timings_s'].get('total', 0):.0f} s · "
            f"policy {esc(report['llm']['policy'])}</span></p>"
            + "".join(sections) + "</body></html>")


def _section(anchor: str, title: str, body: str) -> str:
    return f"<section id='{anchor}'><h2>{esc(title)}</h2>{body}</section>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _task_section(report: dict) -> str:
    task = report["task"]
    decisions = task.get("decisions", {})
    rows = []
    for field in ("target", "id_column", "problem_type", "metric", "submission"):
        value = task["submission"]["kind"] if field == "submission" else task.get(field)
        how = decisions.get(field, "")
        badge = "stated" if how.startswith("stated") else ("default" if how.startswith("default") else "inferred")
        rows.append([esc(field), f"<b>{esc(value)}</b>", f"<span class='badge'>{badge}</span> {esc(how)}"])
    extra = [k for k in decisions if k not in ("target", "id_column", "problem_type", "metric", "submission")]
    rows += [[esc(k), "", esc(decisions[k])] for k in extra]
    return (_table(["field", "value", "how it was decided"], rows)
            + f"<p class='muted'>{task['n_train']} train rows, {task['n_test']} test rows.</p>")


def _profile_section(profile: dict | None) -> str:
    if not profile:
        return "<p class='muted'>no profile</p>"
    roles = profile.get("roles", {})
    role_rows = [[esc(role), esc(len(cols)), esc(", ".join(cols[:12]) + (" …" if len(cols) > 12 else ""))]
                 for role, cols in roles.items()]
    missing = sorted(((c["name"], c["missing_frac"]) for c in profile["columns"] if c["missing_frac"] > 0),
                     key=lambda item: -item[1])[:15]
    charts = [bar_chart([(n, v * 100) for n, v in missing], unit="%", title="missing values (train)", colour=PALETTE[2],
                        fmt="{:.1f}")]
    target = profile["target"]
    if target.get("class_counts"):
        counts = sorted(target["class_counts"].items(), key=lambda item: -item[1])[:15]
        charts.append(bar_chart([(k, float(v)) for k, v in counts], title=f"class balance of {target['name']}",
                                colour=PALETTE[1], fmt="{:.0f}"))
        target_line = f"imbalance ratio {target.get('imbalance_ratio')}"
    else:
        target_line = (f"target {esc(target['name'])}: mean {target.get('mean')}, std {target.get('std')}, "
                       f"min {target.get('min')}, max {target.get('max')}, skew {target.get('skew')}")
    return (_table(["role", "columns", "which"], role_rows) + f"<div class='grid'>{''.join(charts)}</div>"
            + f"<p class='muted'>{esc(target_line)} · {profile['n_train']} train rows · {profile['memory_mb']} MB in memory</p>")


def _plan_section(data: dict) -> str:
    parts = []
    knowledge = data.get("knowledge") or {"cards": []}
    rows = [[esc(c["id"]), esc(c["title"]), esc(c["why"])] for c in knowledge["cards"]]
    parts.append("<h3>Strategy cards matched on the profile</h3>" + _table(["card", "what", "why it applies"], rows))
    blueprint = data.get("blueprint")
    if blueprint:
        prep = blueprint["prep"]
        prep_rows = [[esc(k), esc(", ".join(prep[k]))] for k in ("numeric", "numeric_coerce", "categorical", "text", "datetime")
                     if prep.get(k)]
        prep_rows += [[esc(f"dropped: {col}"), esc(why)] for col, why in prep.get("dropped", {}).items()]
        parts.append("<h3>Preprocessing</h3>" + _table(["step", "columns"], prep_rows))
        for track in blueprint["tracks"]:
            parts.append(f"<h3>Track {esc(track['track'])}</h3><p>models: {esc(', '.join(track['models']))}; "
                         f"{esc('; '.join(track.get('reasons', [])))}</p>")
        if blueprint.get("notes"):
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in blueprint["notes"]) + "</ul>")
        parts.append(f"<details><summary>blueprint.json</summary><pre>{esc(json.dumps(blueprint, indent=1))}</pre></details>")
    if data.get("contract"):
        parts.append(f"<details><summary>contract.json (prep ⇄ model interface)</summary>"
                     f"<pre>{esc(json.dumps(data['contract'], indent=1))}</pre></details>")
    return "".join(parts)


def _timeline_section(data: dict) -> str:
    state = data.get("state") or {}
    stages = state.get("stages", {})
    starts = [s["finished"] - s["seconds"] for s in stages.values() if "finished" in s]
    if not starts:
        return "<p class='muted'>no timings recorded</p>"
    origin = min(starts)
    spans = [(name.replace("_", " "), s["finished"] - s["seconds"] - origin, s["finished"] - origin, [])
             for name, s in stages.items()]
    explore_start = max(end for _, _, end, _ in spans)
    for track, cand in (state.get("candidates") or {}).items():
        marks, t = [], explore_start
        for number, r in enumerate(cand.get("rounds", []), 1):
            t += r.get("wall_s", 0)
            score = "" if r.get("score") is None else f" {r['score']:.5g}"
            what = r.get("step") or ("repair" if r.get("status") != "ok" else "first candidate")
            kept = " (kept)" if r.get("kept") else " (not kept)" if r.get("step") else ""
            threads = f", {r['threads']} threads" if r.get("threads") else ""
            marks.append((t, f"round {r.get('round', number)}: {what}, {r.get('status')}{score}{kept}{threads}"))
        end = explore_start + max(cand.get("wall_s", 0), 0.1)
        # report.json's resources are keyed by track: what Ray gave each one.
        cpus = ((data["report"].get("resources") or {}).get(track) or {}).get("num_cpus")
        label = f"track {track}" + (f" ({cpus:g} CPU)" if cpus else "")
        spans.append((label, explore_start, end, marks))
    return timeline(spans) + ("<p class='muted'>Marks on a track are the ends of its rounds: repairs, its first "
                               "verified candidate, then improvements (hover for the score; the best is kept).</p>")


def _tuning_line(tuning: dict) -> str:
    """One sentence per search: how many trials, how long, and whether the defaults were beaten (inner split)."""
    if tuning.get("error"):
        return f"the search failed ({esc(tuning['error'][:200])}); the blueprint's settings were used"
    if tuning.get("reason"):
        return f"no search: {esc(tuning['reason'])}"
    done = f"{tuning.get('completed', 0)} of {tuning.get('trials', 0)} trials in {tuning.get('seconds', 0):g} s"
    best, default = tuning.get("best_score"), tuning.get("default_score")
    scores = "" if best is None else f", best inner score {best:.5g}" + (
        "" if default is None else f" vs {default:.5g} for the blueprint's settings")
    if tuning.get("kept"):
        params = ", ".join(f"{esc(k)}={esc(_short(v))}" for k, v in (tuning.get("params") or {}).items())
        return f"{done}{scores}; kept: {params}"
    return f"{done}{scores}; the blueprint's settings were kept"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _leaderboard_section(report: dict, run_dir: Path) -> str:
    board = report["leaderboard"]
    metric = report["task"]["metric"]
    chosen = (report.get("chosen") or {}).get("track")
    rows = []
    for c in board:
        css = {"verified": "ok", "not_run": "muted"}.get(c["status"], "failed")
        status = f"<span class='{css}'>{esc(c['status'].replace('_', ' '))}</span>"
        if c["track"] == chosen:
            status += " <span class='badge'>winner</span>"
        score = "" if c["valid_score"] is None else f"{c['valid_score']:.5g}"
        model = c.get("model") or {}
        model = model.get("choice") or model.get("architecture") or ""
        ran = (f"{c['started_s']:.0f}–{c['finished_s']:.0f} s" if c.get("started_s") is not None
               and c.get("finished_s") is not None else f"{c['wall_s']:.0f} s")
        resources = c.get("resources") or {}
        used = "" if not resources else f"{resources.get('num_cpus', 0):g} CPU" + (
            f", {resources['num_gpus']:g} GPU" if resources.get("num_gpus") else "") + (
            f", waited for {', '.join(resources['waits_for'])}" if resources.get("waits_for") else "")
        rows.append([esc(c["track"]), status, score, f"{c['aps']:.3f}", esc(c["repair_rounds"]), esc(ran), esc(used),
                     f"{c['peak_rss_mb']:.0f} MB", esc(str(model)[:80]), esc(c.get("failure") or "")])
    verified = [(c["track"], c["aps"]) for c in board if c["valid_score"] is not None]
    chart = bar_chart(verified, title="APS (higher is better)", colour=PALETTE[3], fmt="{:.3f}")
    parts = [_table(["track", "status", f"validation {metric}", "APS", "repairs", "ran (from the start)", "resources",
                     "peak memory", "model", "failure"], rows), chart]
    tuned = [f"<li>{esc(c['track'])}: {_tuning_line(c['tuning'])}</li>" for c in board if c.get("tuning")]
    if tuned:
        parts.append("<h3>Ray Tune</h3><ul>" + "".join(tuned) + "</ul>")
    ensemble = report.get("ensemble")
    if ensemble:
        weights = ", ".join(f"{esc(t)} {w:.2f}" for t, w in ensemble["weights"].items() if w > 0)
        verdict = "<span class='ok'>kept</span> <span class='badge'>winner</span>" if ensemble["kept"] else "not kept"
        over = "each label's probability" if ensemble.get("over") == "probabilities" else "the validation predictions"
        parts.append(f"<h3>Stacking</h3><p>Blend of {weights}: {verdict} — {esc(ensemble['reason'])}. Weights by greedy "
                     f"ensemble selection on {over}, judged on the half of the validation rows they were "
                     "not fitted on.</p>")
    for c in board:
        parts.append(f"<h3>Rounds of track {esc(c['track'])}</h3>")
        modules = c.get("modules") or {}
        if modules:
            parts.append("<p class='modules'>" + "; ".join(
                f"{esc(role)} module: written by <b>{esc(m['source'])}</b>"
                + (f", rewritten {m['llm_rewrites']}× by the LLM Debugger" if m.get("llm_rewrites") else "")
                for role, m in modules.items()) + "</p>")
        round_rows = []
        for r in c.get("rounds", []):
            diff = ""
            if r.get("diff_file") and Path(r["diff_file"]).exists():
                diff = f"<details><summary>diff</summary><pre>{esc(Path(r['diff_file']).read_text()[:20000])}</pre></details>"
            score = "" if r.get("score") is None else f"{r['score']:.5g}"
            kept = "" if r.get("kept") is None else ("kept" if r["kept"] else "not kept")
            if r.get("kept") is False and r["status"] == "ok" and r.get("diagnosis"):
                kept += f": {r['diagnosis']}"      # it scored better, within the noise of the validation rows
            kind = (r.get("step") or ("repair" if r["status"] != "ok" else "first")) + \
                (f" ({r['threads']} threads)" if r.get("threads") else "") + (f", by {r['author']}" if r.get("author") else "")
            round_rows.append([esc(r["round"]), esc(kind),
                               esc(r["status"]), esc(score), esc(kept), esc(r.get("failure") or "ok"),
                               esc(r.get("blamed") or ""), esc(r.get("change") or ""), diff])
        parts.append(_table(["round", "kind", "status", "score", "", "error", "blamed",
                             "change (repairs: for the next round; improvements: this round's)", ""], round_rows))
        if c.get("stopped"):
            parts.append(f"<p class='muted'>best round: {esc(c.get('best_round'))}; {esc(c['stopped'])}</p>")
        code = run_dir / "candidates" / c["track"] / f"pipeline_{c['track']}.py"
        if code.exists():
            parts.append(f"<details><summary>code of the {esc(c['track'])} candidate ({code.name})</summary>"
                         f"<pre>{esc(code.read_text())}</pre></details>")
    return "".join(parts)


def _diagnostics_section(report: dict, run_dir: Path, data: dict) -> str:
    chosen = report.get("chosen")
    if not chosen:
        return "<p class='muted'>no winner to diagnose</p>"
    if chosen["track"] == "ensemble":
        valid = run_dir / "ensemble" / "valid_predictions.csv"
    else:
        entry = next((c for c in report["leaderboard"] if c["track"] == chosen["track"]), None)
        if entry is None:
            return "<p class='muted'>the winner is not on the leaderboard</p>"
        best_round = entry.get("best_round") or len(entry["rounds"])
        valid = run_dir / "candidates" / entry["track"] / f"round_{best_round}" / "output" / "valid_predictions.csv"
    summary = data.get("task_summary")
    if not valid.exists() or not summary:
        return "<p class='muted'>the winner's validation predictions are not in the run directory</p>"
    import numpy as np
    import pandas as pd

    from iml_ray.scoring.evaluate import read_target
    from iml_ray.task.files import TaskSummary

    summary_obj = TaskSummary.from_json(summary)
    frame = pd.read_csv(valid, low_memory=False)
    frame.columns = [str(c) for c in frame.columns]
    truth = read_target(summary_obj).iloc[frame["__row__"].to_numpy()].reset_index(drop=True)
    fmt = summary_obj.submission
    if isinstance(truth, pd.DataFrame):          # several targets: the charts show the first
        truth = truth.iloc[:, 0]
    if fmt.kind == "value":
        pred = frame[fmt.target_columns[0]].to_numpy(dtype=float)
        true = truth.to_numpy(dtype=float)
        return scatter(list(zip(pred.tolist(), (true - pred).tolist())), title="residuals (true − predicted)",
                       x_label="predicted", y_label="residual")
    keys = [str(c) for c in fmt.classes]
    if fmt.kind == "class_probabilities":
        labels = np.asarray(keys)[frame[list(fmt.target_columns)].to_numpy(dtype=float).argmax(axis=1)]
    elif fmt.kind == "probability":
        p = frame[fmt.target_columns[0]].to_numpy(dtype=float)
        negative = next(k for k in keys if k != str(fmt.positive_class))
        labels = np.where(p >= 0.5, str(fmt.positive_class), negative)
    else:                                        # ranked labels (MAP@k): the chart shows the first
        labels = frame[fmt.target_columns[0]].astype(str).to_numpy()
        if fmt.top_k > 1:
            labels = np.array([(value.split() or [""])[0] for value in labels])
    true = truth.astype(str).to_numpy()
    shown = keys[:12]
    matrix = [[int(((true == a) & (labels == b)).sum()) for b in shown] for a in shown]
    charts = [heatmap(matrix, shown, title="confusion matrix (validation)")]
    if fmt.kind == "probability":
        charts.append(line_chart(_roc(true == str(fmt.positive_class), p), title="ROC (validation)",
                                 x_label="false positive rate", y_label="true positive rate", diagonal=True))
    return f"<div class='grid'>{''.join(charts)}</div>"


def _roc(positive, scores) -> list[tuple[float, float]]:
    import numpy as np

    order = np.argsort(-np.asarray(scores), kind="mergesort")
    hits = np.asarray(positive)[order].astype(float)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    tpr = tp / max(tp[-1], 1.0)
    fpr = fp / max(fp[-1], 1.0)
    step = max(1, len(tpr) // 400)
    return [(0.0, 0.0)] + [(float(x), float(y)) for x, y in zip(fpr[::step], tpr[::step])] + [(1.0, 1.0)]


def _cost_section(report: dict) -> str:
    llm = report.get("llm", {})
    if llm.get("policy") == "rules" or "agents" not in llm:
        return (f"<p>policy <b>{esc(llm.get('policy'))}</b>: {llm.get('tokens', 0)} tokens, "
                f"${llm.get('cost_usd', 0.0):.4f}. The rules policy calls no model.</p>")
    settings = llm.get("settings", {})
    totals = llm.get("totals", {})
    rows = [[esc(agent), esc(a.get("requests", 0)), esc(a.get("cache_hits", 0)), esc(a.get("prompt_tokens", 0)),
             esc(a.get("completion_tokens", 0)), f"${a.get('cost_usd', 0.0):.4f}", f"{a.get('seconds', 0.0):.1f}"]
            for agent, a in sorted(llm.get("agents", {}).items())]
    rows.append(["<b>total</b>", esc(totals.get("requests", 0)), esc(totals.get("cache_hits", 0)),
                 esc(totals.get("prompt_tokens", 0)), esc(totals.get("completion_tokens", 0)),
                 f"<b>${totals.get('cost_usd', 0.0):.4f}</b>", f"{totals.get('seconds', 0.0):.1f}"])
    head = (f"<p>policy <b>{esc(llm.get('policy'))}</b>, model {esc(settings.get('model'))}"
            + (" — <span class='failed'>budget reached: later calls went to the rules</span>" if llm.get("exhausted") else "")
            + "</p>")
    if llm.get("out_of_time"):
        head += (f"<p class='muted'>{esc(llm['out_of_time'])} LLM call(s) not started: the LLM's share of the time "
                 "budget was used; the rules answered.</p>")
    fallbacks = [e for e in llm.get("events", []) if e.get("what") == "rules"]
    notes = "".join(f"<li>{esc(e['agent'])}: {esc(e['detail'])}</li>" for e in fallbacks[:30])
    return (head + _table(["agent", "requests", "cache hits", "prompt tokens", "completion tokens", "cost", "seconds"], rows)
            + _servers_section(llm.get("servers") or [])
            + (f"<h3>Where the rules stood in</h3><ul>{notes}</ul>" if notes else ""))


def _servers_section(servers: list[dict]) -> str:
    """The local model servers' throughput (figures of the whole job: a batch's competitions share a server)."""
    if not servers:
        return ""
    rows = []
    for s in servers:
        if "error" in s:
            rows.append([esc(s["error"])] + [""] * 7)
            continue
        sizes = ", ".join(f"{size}×{count}" for size, count in s.get("batch_sizes", {}).items()) or "none"
        rows.append([esc(str(s.get("model", "")).rsplit("/", 1)[-1]), esc(f"{s.get('backend')} on {s.get('device')}"),
                     f"{s.get('load_s', 0):.1f}", esc(s.get("requests", 0)), esc(s.get("model_calls", 0)), esc(sizes),
                     f"{s.get('tokens_per_s', 0):.1f}", f"{s.get('requests_per_s', 0):.3f}"])
    return ("<h3>Local model server</h3><p class='muted'>Shared by every competition of the job; figures since it "
            "started. Tokens/s is generated tokens per second of model time.</p>"
            + _table(["model", "backend", "load (s)", "requests", "model calls", "batch sizes (size×calls)",
                      "tokens/s", "requests/s"], rows))

