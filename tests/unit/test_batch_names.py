"""Competition names in a batch come from the task directories and are unique."""
from __future__ import annotations

from iml_ray.batch import competition_names, previous_status


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

    from iml_ray.batch import Competition, CompetitionResult, _write_summary

    competitions = [Competition("a", "/t/a", str(tmp_path / "a")), Competition("b", "/t/b", str(tmp_path / "b"))]
    results = {"a": CompetitionResult("a", "ok", str(tmp_path / "a"), wall_s=10, llm_tokens=1200, llm_cost_usd=0.012),
               "b": CompetitionResult("b", "ok", str(tmp_path / "b"), wall_s=12, llm_tokens=800, llm_cost_usd=0.004)}
    summary = _write_summary(tmp_path, competitions, results, 0.0)
    assert summary["llm"] == {"tokens": 2000, "cost_usd": 0.016}
    assert json.loads((tmp_path / "batch.json").read_text())["competitions"][1]["llm_tokens"] == 800
