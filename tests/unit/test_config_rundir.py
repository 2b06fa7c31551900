"""RunConfig validation and the run directory's refusal and atomic writes."""
from __future__ import annotations

import json

import pytest

from iml_ray.config import RunConfig
from iml_ray.errors import ConfigError, OutputDirError
from iml_ray.rundir import RunDir, atomic_write_json


def test_yaml_overrides_and_cli_overrides_win(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("time_budget_s: 90\nseed: 3\ntracks: traditional\n")
    config = RunConfig.from_yaml(path, seed=7)
    assert (config.time_budget_s, config.seed, config.tracks) == (90, 7, ("traditional",))


@pytest.mark.parametrize("text, message", [
    ("budget: 5\n", "unknown configuration key"),
    ("time_budget_s: -1\n", "time budget must be positive"),
    ("tracks: [warp]\n", "unknown track"),
    ("[1, 2\n", "not valid YAML"),
    ("time_budget_s: 60\nreserve_s: 60\n", "reserve_s 60 is outside"),
])
def test_bad_config_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_yaml(path)


@pytest.mark.parametrize("budget, reserve_s, reserve", [
    (90, None, 4.5),        # 5% of the budget: a short budget keeps its time for the tracks
    (30, None, 4.0),        # never below what the finish needs
    (600, None, 10.0),      # never more than the finish could use
    (30, 1, 1.0),           # a configured reserve is taken as it is
])
def test_the_budgets_reserve_scales_with_the_budget(budget, reserve_s, reserve):
    assert RunConfig(time_budget_s=budget, reserve_s=reserve_s).reserve == reserve


@pytest.mark.parametrize("budget,plan_budget", [(90, 90 - 4.5 - 17), (300, 300 - 10 - 17), (20, (20 - 4) * 0.25)])
def test_the_plan_is_sized_for_the_budget_less_its_reserve_and_a_usual_start(budget, plan_budget):
    # The same for every run of a configuration: a plan sized from the clock made a rerun miss the LLM's cache.
    assert RunConfig(time_budget_s=budget).plan_budget == pytest.approx(plan_budget)


def test_force_clears_only_what_a_run_wrote(tmp_path):
    out = tmp_path / "out"
    (out / "plan").mkdir(parents=True)
    (out / "state.json").write_text("{}")
    (out / "my_notes.txt").write_text("keep me")
    with pytest.raises(OutputDirError):
        RunDir.check(out)
    rundir = RunDir.check(out, force=True)
    rundir.prepare(force=True)
    assert not (out / "state.json").exists()
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert (out / "plan").is_dir() and (out / "candidates").is_dir()


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
