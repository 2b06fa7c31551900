"""Batch bookkeeping: unique competition names, previous state, manifests, the summary."""
from __future__ import annotations

import pytest

from iml_ray.run.batch import competition_names, previous_status


def test_names_are_unique_and_mlebench_public_uses_its_parent(tmp_path):
    for path in ("a/titanic", "b/titanic", "spaceship/public"):
        (tmp_path / path).mkdir(parents=True)
    names = [c.name for c in competition_names([str(tmp_path / p) for p in ("a/titanic", "b/titanic", "spaceship/public")])]
    assert names == ["titanic", "titanic-2", "spaceship"]


def test_previous_status_reads_the_run_state(tmp_path):
    assert previous_status(tmp_path) is None
    (tmp_path / "state.json").write_text('{"stages": {}}')
    assert previous_status(tmp_path) == "unfinished"
    (tmp_path / "state.json").write_text('{"stages": {}, "status": "ok"}')
    assert previous_status(tmp_path) == "ok"


def test_batch_summary_adds_up_the_competitions_llm_spend(tmp_path):
    import json

    from iml_ray.run.batch import Competition, CompetitionResult, _write_summary

    competitions = [Competition("a", "/t/a", str(tmp_path / "a")), Competition("b", "/t/b", str(tmp_path / "b"))]
    results = {"a": CompetitionResult("a", "ok", str(tmp_path / "a"), wall_s=10, llm_tokens=1200, llm_cost_usd=0.012),
               "b": CompetitionResult("b", "ok", str(tmp_path / "b"), wall_s=12, llm_tokens=800, llm_cost_usd=0.004)}
    summary = _write_summary(tmp_path, competitions, results, 0.0)
    assert summary["llm"] == {"tokens": 2000, "cost_usd": 0.016}
    assert json.loads((tmp_path / "batch.json").read_text())["competitions"][1]["llm_tokens"] == 800


def test_a_manifest_gives_each_competition_its_own_budget_and_overrides(tmp_path):
    from iml_ray.config import RunConfig
    from iml_ray.run.batch import competition_names, read_manifest

    manifest = tmp_path / "batch.yaml"
    manifest.write_text("tasks:\n  - tasks/a\n  - path: tasks/b\n    time_budget: 120\n    name: bee\n"
                        "    overrides: {tracks: traditional, tune: 'off'}\n")
    base = RunConfig(time_budget_s=600)
    a, b = competition_names(read_manifest(manifest, base))
    assert a.name == "a" and a.task_dir == str(tmp_path / "tasks" / "a") and a.config(base) == base
    assert b.name == "bee"
    config = b.config(base)
    assert config.time_budget_s == 120 and config.tracks == ("traditional",) and config.tune == "off"


@pytest.mark.parametrize("text, complaint", [
    ("[]", "lists no tasks"),
    ("- path: a\n  budget: 3\n", "unknown key(s) budget"),
    ("- path: a\n  overrides: {tune: sometimes}\n", "unknown tune mode"),
    ("- {time_budget: 3}\n", "needs a path"),
])
def test_a_bad_manifest_fails_before_anything_runs(tmp_path, text, complaint):
    from iml_ray.config import RunConfig
    from iml_ray.errors import ConfigError
    from iml_ray.run.batch import read_manifest

    manifest = tmp_path / "batch.yaml"
    manifest.write_text(text)
    with pytest.raises(ConfigError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(manifest, RunConfig())


def test_the_progress_of_a_running_competition_shows_its_best_score_so_far(tmp_path):
    import json

    from iml_ray.run.batch import Competition, _live

    comp = Competition("a", "/t/a", str(tmp_path / "a"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "state.json").write_text(json.dumps({
        "stages": {"task_summary": {}, "holdout": {}},
        "candidates": {"traditional": {"status": "verified", "valid_score": 0.41, "metric": "rmse"},
                       "custom_nn": {"status": "verified", "valid_score": 0.37, "metric": "rmse"},
                       "pretrained": {"status": "failed", "valid_score": None, "metric": "rmse"}}}))
    queued = Competition("b", "/t/b", str(tmp_path / "b"))
    rows = _live([comp, queued], {}, [comp], {"a": 0.0})
    assert rows[0]["phase"] == "exploring (2 verified)" and rows[0]["score"] == 0.37 and rows[0]["metric"] == "rmse"
    assert rows[0]["elapsed"] > 0
    assert rows[1]["phase"] == "queued" and rows[1]["score"] is None
