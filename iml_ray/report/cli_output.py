"""What `iml` prints: a run's summary, the batch's live table and its final table.

Rich is imported inside the functions, so `iml --help` stays instant.
"""
from __future__ import annotations

from pathlib import Path


def print_summary(report: dict, out: Path) -> None:
    """The leaderboard and where things are, from a run's report.json."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    task = report["task"]
    kind = task.get("task_type", task["problem_type"])
    table = Table(title=f"{task['name']}: {kind}, metric {task['metric']}", title_justify="left")
    for column in ("track", "status", "score", "repairs", "ran (s)", "resources", "model / failure"):
        table.add_column(column)
    for row in report["leaderboard"]:
        score = "" if row["valid_score"] is None else f"{row['valid_score']:.5g}"
        table.add_row(row["track"], row["status"].replace("_", " "), score, str(row["repair_rounds"]), _span(row),
                      _resources(row.get("resources")), row["failure"] or _model(row.get("model")))
    console.print(table)
    for note in report.get("blueprint_notes", []):
        if note.startswith("track "):
            console.print(f"note: {note}", soft_wrap=True)
    chosen = report.get("chosen")
    if report["status"] == "ok" and chosen:
        if chosen["track"] == "ensemble":
            members = " + ".join(f"{w:.2f}×{t}" for t, w in chosen["weights"].items() if w > 0)
            console.print(f"chosen: [bold]ensemble[/bold] {members}, validation {task['metric']} = {chosen['valid_score']:.5g} "
                          f"(weights fitted on one half of iml-ray's validation rows, {validation_rows(report['validation'])}, "
                          "scored on the other)", soft_wrap=True)
        else:
            console.print(f"chosen: [bold]{chosen['track']}[/bold], validation {task['metric']} = {chosen['valid_score']:.5g} "
                          f"(scored by iml-ray on {validation_rows(report['validation'])})", soft_wrap=True)
        if report.get("ensemble") and not report["ensemble"]["kept"]:
            console.print(f"stacking: not kept: {report['ensemble']['reason']}", soft_wrap=True)
        console.print(f"submission: {report['paths']['submission']}", soft_wrap=True)
        console.print(f"pipeline:   {report['paths']['pipeline']}", soft_wrap=True)
        console.print(f"rerun:      python {report['paths']['pipeline']} --data {task['task_dir']} --out DIR", soft_wrap=True)
    else:
        console.print("[bold red]no candidate passed verification[/bold red]; see the leaderboard above and "
                      f"{out / 'report.json'}", soft_wrap=True)
    llm = report.get("llm") or {}
    if llm.get("policy", "rules") != "rules" and "totals" in llm:
        totals = llm["totals"]
        console.print(f"llm:        {totals.get('total_tokens', 0)} tokens, ${totals.get('cost_usd', 0.0):.4f}, "
                      f"{totals.get('requests', 0)} requests, {totals.get('cache_hits', 0)} from the cache"
                      + (" (budget reached: the rest ran on rules)" if llm.get("exhausted") else ""), soft_wrap=True)
        if llm.get("down"):
            console.print(f"            the rules stood in after: {llm['down']}", soft_wrap=True)
        for server in llm.get("servers") or []:
            if "error" not in server:
                console.print(f"            local model: {server['requests']} requests in {server['model_calls']} model "
                              f"calls, {server['tokens_per_s']:.1f} tokens/s ({server['backend']} on {server['device']})",
                              soft_wrap=True)
    console.print(f"report:     {out / 'report.html'}   ({report['timings_s']['total']:.0f}s)", soft_wrap=True)


def _span(row: dict) -> str:
    """When the track ran, from the run's start: overlapping spans are tracks that ran at once."""
    if row.get("started_s") is not None and row.get("finished_s") is not None:
        return f"{row['started_s']:.0f}–{row['finished_s']:.0f}"
    return f"{row['wall_s']:.0f}"


def _resources(resources: dict | None) -> str:
    if not resources:
        return ""
    text = f"{resources['num_cpus']:g} CPU"
    text += f", {resources['num_gpus']:g} GPU" if resources.get("num_gpus") else ""
    return text + (f", after {', '.join(resources['waits_for'])}" if resources.get("waits_for") else "")


def _model(model: dict | None) -> str:
    if not model:
        return ""
    if "choice" in model:
        return f"model: {model['choice']}"
    return str(model.get("architecture", ""))[:60]


def batch_table(rows: list[dict]):
    """The batch's live view: one row per competition."""
    from rich.table import Table

    table = Table(title="iml batch", title_justify="left")
    for column in ("competition", "phase", "best so far", "elapsed (s)"):
        table.add_column(column)
    for r in rows:
        score = "" if r["score"] is None else f"{r['score']:.5g}" + (f" {r['metric']}" if r.get("metric") else "")
        table.add_row(r["name"], r["phase"], score, f"{r.get('elapsed') or 0:.0f}")
    return table


def print_batch_summary(summary: dict, out: Path) -> None:
    """The finished batch: one row per competition, the local model servers, where batch.json is."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"batch: {len(summary['competitions'])} competitions, {summary['wall_s']:.0f}s, "
                        f"{summary['throughput_per_hour']:.1f} finished/hour", title_justify="left")
    with_llm = summary.get("llm", {}).get("tokens", 0) > 0
    columns = ("competition", "status", "metric", "score", "seconds") + (("LLM tokens", "cost") if with_llm else ())
    for column in columns + ("note",):
        table.add_column(column)
    for c in summary["competitions"]:
        score = "" if c.get("valid_score") is None else f"{c['valid_score']:.5g}"
        spend = (str(c.get("llm_tokens", 0)), f"${c.get('llm_cost_usd', 0.0):.4f}") if with_llm else ()
        table.add_row(c["name"], c["status"], c.get("metric") or "", score, f"{c.get('wall_s', 0):.0f}", *spend,
                      c.get("error") or "")
    Console().print(table)
    for server in summary.get("llm", {}).get("servers") or []:
        if "error" in server:
            print(f"local model: did not serve: {server['error']}")
        else:
            print(f"local model: loaded {server['loads']}x in {server['load_s']} s, {server['requests']} requests in "
                  f"{server['model_calls']} model calls, {server['tokens_per_s']:.1f} tokens/s "
                  f"({server['backend']} on {server['device']})")
    print(f"batch.json: {out / 'batch.json'}")


def validation_rows(validation: dict) -> str:
    """The framework's validation rows in words: "a 20% holdout", or "5 folds, every labelled row held out once"."""
    if validation.get("folds"):
        return f"{validation['folds']} folds, every labelled row held out once"
    return f"a {validation['holdout_fraction']:.0%} holdout"
