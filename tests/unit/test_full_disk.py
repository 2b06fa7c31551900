"""A full disk: writes to the run directory fail with one clear error, and what was written before stays intact.

The disk is a tmpfs of 256 KB, mounted in a namespace of the test's own (helpers.run_on_small_disk)."""
from __future__ import annotations

from helpers import run_on_small_disk

SCENARIO = r'''
import json, os, sys
from pathlib import Path
from iml_ray.errors import NoSpaceError
from iml_ray.rundir import RunDir, atomic_copy, atomic_write_json, atomic_write_text

out = Path(sys.argv[1]) / "out"
small, big = Path(sys.argv[3]), Path(sys.argv[4])      # outside the tmpfs
run = RunDir(out)
run.prepare()
atomic_write_json(out / "report.json", {"status": "ok", "valid_score": 0.91})
atomic_copy(small, out / "submission.csv")
run.save_state({"stages": {"profile": {"finished": 1.0}}, "candidates": {}})
run.write_plan("task_summary", {"target": "label"})

def snapshot():
    return {str(p.relative_to(out)): p.read_bytes().decode() for p in sorted(out.rglob("*")) if p.is_file()}

before = snapshot()
huge = "x" * (2 << 20)
attempts = {
    "report": lambda: atomic_write_text(out / "report.json", huge),
    "submission": lambda: atomic_copy(big, out / "submission.csv"),
    "state": lambda: run.save_state({"stages": {}, "candidates": {}, "log": huge}),
    "new plan": lambda: run.write_plan("profile", {"columns": huge}),
    "new folder": lambda: atomic_write_json(out / "candidates" / "traditional" / "round_0" / "x.json", [huge]),
}
raised = {}
for name, attempt in attempts.items():
    try:
        attempt()
        raised[name] = "nothing raised"
    except NoSpaceError as exc:
        raised[name] = exc.render()
    except BaseException as exc:
        raised[name] = "unexpected %s: %s" % (type(exc).__name__, exc)
after = snapshot()
print(json.dumps({"before": before, "after": after, "raised": raised,
                  "everything": sorted(str(p.relative_to(out)) for p in out.rglob("*"))}))
'''


def test_a_full_disk_is_one_clear_error_and_leaves_earlier_results_byte_identical(tmp_path):
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("id,label\n1,0\n2,1\n")
    big.write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(300_000)))
    mount = tmp_path / "disk"
    answer = run_on_small_disk(SCENARIO, mount, "256k", small, big)

    for name, rendered in answer["raised"].items():
        first, *rest = rendered.splitlines()
        assert first.startswith("error: no space left on device writing "), (name, rendered)
        assert str(mount / "out") in first and len(rest) == 1 and "--out" in rest[0] and "Traceback" not in rendered
    assert "report.json" in answer["raised"]["report"] and "submission.csv" in answer["raised"]["submission"]
    # Earlier results byte for byte; no temporary file (.report.json.xxxx: rglob sees hidden files) and no
    # half-written new file is left behind, at most the empty folders it was to go in.
    assert set(answer["before"]) == {"report.json", "submission.csv", "state.json", "plan/task_summary.json"}
    assert answer["after"] == answer["before"]
    assert answer["before"]["submission.csv"] == small.read_text()
    assert set(answer["everything"]) - set(answer["before"]) <= {
        "plan", "candidates", "candidates/traditional", "candidates/traditional/round_0"}
