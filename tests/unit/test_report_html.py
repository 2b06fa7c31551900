"""report.html is rendered from the run directory alone, for winners and for failed runs."""
from __future__ import annotations

import json

import pandas as pd
from helpers import write_task

from iml_ray.report.html import render_run_report
from iml_ray.report.svg import bar_chart, heatmap, timeline


def _fake_run(tmp_path, status="ok", kind="value"):
    task = write_task(tmp_path / "task", pd.DataFrame({"id": [1, 2, 3, 4], "x": [1, 2, 3, 4], "y": [1.0, 2.0, 3.0, 4.0]}),
                      pd.DataFrame({"id": [5], "x": [5]}))
    run = tmp_path / "run"
    out = run / "candidates" / "traditional" / "round_1" / "output"
    out.mkdir(parents=True)
    pd.DataFrame({"__row__": [1, 3], "y": [2.5, 3.5]}).to_csv(out / "valid_predictions.csv", index=False)
    fmt = {"id_column": "id", "target_columns": ["y"], "kind": kind, "classes": [], "positive_class": None,
           "label_dtype": "float64", "sample_rows": 0}
    summary = {"name": "toy", "task_dir": str(task), "train_file": "train.csv", "test_file": "test.csv",
               "sample_submission_file": None, "target": "y", "id_column": "id", "problem_type": "regression",
               "metric": "rmse", "submission": fmt, "feature_columns": ["x"], "dropped_columns": [], "n_train": 4,
               "n_test": 1, "decisions": {"target": "stated in task.yaml"}, "description": ""}
    (run / "plan").mkdir()
    (run / "plan" / "task_summary.json").write_text(json.dumps(summary))
    rounds = [{"round": 1, "status": "timeout", "wall_s": 3.0, "failure": "timed out <after> 3 s", "blamed": "resources",
               "diagnosis": "timeout", "change": "faster", "diff_file": None}]
    leader = {"track": "traditional", "status": "verified" if status == "ok" else "failed",
              "valid_score": 0.5 if status == "ok" else None,
              "aps": 0.6 if status == "ok" else 0.0, "metric": "rmse", "repair_rounds": 0, "wall_s": 4.0, "peak_rss_mb": 100.0,
              "failure": None if status == "ok" else "still failing", "model": None,
              "rounds": rounds if status != "ok" else [{"round": 1, "status": "ok", "wall_s": 3.0}]}
    report = {"status": status, "task": {**summary, "inferred": {}}, "leaderboard": [leader],
              "chosen": {"track": "traditional", "valid_score": 0.5, "aps": 0.6} if status == "ok" else None,
              "validation": {"holdout_fraction": 0.2}, "timings_s": {"total": 9.0}, "llm": {"policy": "rules", "tokens": 0,
                                                                                          "cost_usd": 0.0}}
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_regression_winner_gets_residuals(tmp_path):
    page = render_run_report(_fake_run(tmp_path))
    assert "residuals (true − predicted)" in page
    assert "default-src 'none'" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_failed_run_shows_the_failure_and_escapes_text(tmp_path):
    page = render_run_report(_fake_run(tmp_path, status="failed"))
    assert "no verified candidate" in page and "still failing" in page
    assert "timed out &lt;after&gt; 3 s" in page and "<after>" not in page
    assert "no winner to diagnose" in page


def test_charts_scale_to_their_data():
    svg = bar_chart([("a", 1.0), ("b", 2.0)], title="t")
    assert svg.count("<rect") == 2 and "t</text>" in svg
    assert heatmap([[3, 1], [0, 5]], ["x", "y"], title="cm").count("<rect") == 4
    assert timeline([("stage", 0.0, 1.0, []), ("track", 1.0, 5.0, [2.0])]).count("<line") == 1


def test_a_kept_ensemble_is_the_winner_and_is_diagnosed(tmp_path):
    run = _fake_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    report["chosen"] = {"track": "ensemble", "valid_score": 0.4, "aps": 0.7, "weights": {"traditional": 0.6, "custom_nn": 0.4}}
    report["ensemble"] = {"members": ["traditional", "custom_nn"], "weights": {"traditional": 0.6, "custom_nn": 0.4},
                          "blend_score": 0.4, "single_score": 0.5, "kept": True, "reason": "the blend beat the best"}
    (run / "report.json").write_text(json.dumps(report))
    (run / "ensemble").mkdir()
    pd.DataFrame({"__row__": [1, 3], "y": [2.2, 3.8]}).to_csv(run / "ensemble" / "valid_predictions.csv", index=False)
    page = render_run_report(run)
    assert "Stacking" in page and "traditional 0.60" in page and "the blend beat the best" in page
    assert "residuals (true − predicted)" in page


def test_a_tuned_candidate_says_what_its_search_found(tmp_path):
    run = _fake_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    report["leaderboard"][0]["tuning"] = {"trials": 9, "completed": 8, "errors": 1, "seconds": 21.5,
                                          "best_score": 0.93125, "default_score": 0.925, "kept": True,
                                          "params": {"learning_rate": 0.0712345, "num_leaves": 40}}
    report["leaderboard"].append({**report["leaderboard"][0], "track": "custom_nn",
                                  "tuning": {"trials": 0, "reason": "only 120 inner validation rows", "kept": False}})
    (run / "report.json").write_text(json.dumps(report))
    page = render_run_report(run)
    assert "8 of 9 trials in 21.5 s, best inner score 0.93125 vs 0.925 for the blueprint" in page
    assert "kept: learning_rate=0.07123, num_leaves=40" in page
    assert "no search: only 120 inner validation rows" in page


def test_the_llm_section_shows_each_agents_spend_and_every_fallback():
    from iml_ray.report.html import _cost_section

    report = {"llm": {"policy": "openai", "settings": {"model": "gpt-x"}, "exhausted": True,
                      "totals": {"requests": 5, "cache_hits": 2, "prompt_tokens": 900, "completion_tokens": 300,
                                 "cost_usd": 0.0123, "seconds": 4.2},
                      "agents": {"guideline": {"requests": 2, "cache_hits": 0, "prompt_tokens": 600,
                                               "completion_tokens": 200, "cost_usd": 0.01, "seconds": 3.0},
                                 "debugger": {"requests": 3, "cache_hits": 2, "prompt_tokens": 300,
                                              "completion_tokens": 100, "cost_usd": 0.0023, "seconds": 1.2}},
                      "events": [{"agent": "modeling_coder", "what": "rules", "detail": "BudgetExceeded: LLM budget reached"},
                                 {"agent": "guideline", "what": "llm", "detail": "blueprint accepted"}]}}
    html = _cost_section(report)
    assert "gpt-x" in html and "budget reached" in html
    assert "<td>guideline</td><td>2</td><td>0</td><td>600</td><td>200</td><td>$0.0100</td>" in html
    assert "<b>$0.0123</b>" in html
    assert "modeling_coder: BudgetExceeded: LLM budget reached" in html and "blueprint accepted" not in html
    assert "calls no model" in _cost_section({"llm": {"policy": "rules", "tokens": 0, "cost_usd": 0.0}})


def test_the_llm_section_shows_the_local_model_servers_throughput():
    from iml_ray.report.html import _cost_section

    server = {"model": "local:/models/SmolLM2-135M-Instruct.Q4_1.gguf", "backend": "transformers", "device": "cpu",
              "load_s": 16.2, "requests": 9, "model_calls": 5, "batch_sizes": {"1": 3, "3": 2},
              "tokens_per_s": 11.64, "requests_per_s": 0.041}
    report = {"llm": {"policy": "local", "settings": {"model": server["model"]}, "out_of_time": 2,
                      "totals": {"requests": 9}, "agents": {}, "events": [],
                      "servers": [server, {"error": "RayActorError: the actor died"}]}}
    html = _cost_section(report)
    assert "Local model server" in html
    assert ("<td>SmolLM2-135M-Instruct.Q4_1.gguf</td><td>transformers on cpu</td><td>16.2</td><td>9</td><td>5</td>"
            "<td>1×3, 3×2</td><td>11.6</td><td>0.041</td>") in html
    assert "RayActorError: the actor died" in html
    assert "2 LLM call(s) not started" in html
    assert "Local model server" not in _cost_section({"llm": {**report["llm"], "servers": []}})


def test_the_timeline_shows_the_cpus_each_track_was_given():
    from iml_ray.report.html import _timeline_section

    state = {"stages": {"profile": {"finished": 10.0, "seconds": 2.0}},
             "candidates": {"traditional": {"wall_s": 5.0, "rounds": [{"wall_s": 5.0}]},
                            "custom_nn": {"wall_s": 4.0, "rounds": [{"wall_s": 4.0}]}}}
    report = {"resources": {"traditional": {"num_cpus": 0.65, "threads": 1, "num_gpus": 0.0, "memory_mb": 100},
                            "custom_nn": {"num_cpus": 1.3, "threads": 1, "num_gpus": 0.0, "memory_mb": 100}}}
    page = _timeline_section({"state": state, "report": report})
    assert "track traditional (0.65 CPU)" in page and "track custom_nn (1.3 CPU)" in page


def test_the_timeline_marks_each_round_with_its_kind_score_and_whether_it_was_kept():
    from iml_ray.report.html import _timeline_section

    rounds = [{"round": 1, "status": "timeout", "wall_s": 3.0},
              {"round": 2, "status": "ok", "wall_s": 4.0, "score": 0.71},
              {"round": 3, "status": "ok", "wall_s": 5.0, "score": 0.78, "step": "rows", "kept": True},
              {"round": 4, "status": "ok", "wall_s": 6.0, "score": 0.75, "step": "finer_boosting", "kept": False}]
    state = {"stages": {"profile": {"finished": 10.0, "seconds": 2.0}},
             "candidates": {"traditional": {"wall_s": 18.0, "rounds": rounds}}}
    page = _timeline_section({"state": state, "report": {}})
    assert "<title>round 1: repair, timeout</title>" in page
    assert "<title>round 2: first candidate, ok 0.71</title>" in page
    assert "<title>round 3: rows, ok 0.78 (kept)</title>" in page
    assert "<title>round 4: finer_boosting, ok 0.75 (not kept)</title>" in page
