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
