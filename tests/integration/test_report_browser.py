"""report.html in headless Chromium: loads from disk, no console errors, no network, sections render."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import binary_frames, write_task

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("IML_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
SECTIONS = ("task", "profile", "plan", "timeline", "leaderboard", "diagnostics", "cost")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "the browser tests need Debian's chromium: scripts/test.sh installs it (apt-get install chromium)"
    return path


def browse(page: Path, tmp: Path, *extra: str) -> tuple[str, str, list[dict]]:
    """DOM, browser log and network log of one headless page load (no host resolves but localhost)."""
    netlog = tmp / "netlog.json"
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
         "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    events = json.loads(netlog.read_text())["events"] if netlog.exists() else []
    return result.stdout, result.stderr, events


def page_requests(events: list[dict]) -> list[str]:
    """Network requests the page made (the browser's own background requests have no origin)."""
    return sorted({e["params"]["url"] for e in events
                   if "url" in e.get("params", {}) and e["params"].get("initiator", "not an origin") != "not an origin"})


def console_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    train, test, sample = binary_frames(400, 100)
    sample["label"] = 0.5
    task = write_task(base / "toy", train, test, sample, "## Evaluation\nArea under the ROC curve.")
    out = base / "out"
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    subprocess.run([sys.executable, "-m", "iml_ray.cli", "run", str(task), "--out", str(out), "--time-budget", "120"],
                   check=True, capture_output=True, env=env, timeout=300)
    return out


def test_report_loads_offline_and_renders_every_section(run_dir, tmp_path):
    page = run_dir / "report.html"
    assert page.is_file()
    dom, log, events = browse(page, tmp_path, "--dump-dom")
    for section in SECTIONS:
        assert f'id="{section}"' in dom, f"section {section} missing"
    assert dom.count("<svg") >= 5                      # profile, timeline, APS, confusion matrix, ROC
    assert "ROC (validation)" in dom and "confusion matrix" in dom
    assert "verified" in dom and "winner" in dom
    assert "fit_model" in dom                           # the candidate's code is one click away
    assert console_lines(log) == []
    assert page_requests(events) == []


def test_the_offline_checks_catch_a_page_that_reaches_out(tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text('<!doctype html><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>')
    _, log, events = browse(page, tmp_path, "--dump-dom")
    assert page_requests(events) == ["http://127.0.0.1:9/x.png"]
    assert any("boom" in line for line in console_lines(log))


def test_screenshot_artifact(run_dir, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    browse(run_dir / "report.html", tmp_path, "--window-size=1200,3000", f"--screenshot={shot}")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_iml_report_rebuilds_the_page(run_dir):
    page = run_dir / "report.html"
    page.unlink()
    result = subprocess.run([sys.executable, "-m", "iml_ray.cli", "report", str(run_dir)], capture_output=True, text=True)
    assert result.returncode == 0 and page.is_file()
    assert "report.html" in result.stdout


@pytest.fixture(scope="module")
def batch_root(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    tasks = []
    for seed in (1, 2):
        train, test, sample = binary_frames(200, 50, seed=seed)
        tasks.append(write_task(base / f"comp{seed}", train, test, sample, "## Evaluation\nAccuracy."))
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    env.pop("RAY_ADDRESS", None)
    subprocess.run([sys.executable, "-m", "iml_ray.cli", "batch", *map(str, tasks), "--out", str(base / "runs"),
                    "--time-budget", "60", "--tracks", "traditional"], check=True, capture_output=True, env=env, timeout=300)
    return base / "runs"


def test_batch_report_links_every_competition_and_shows_throughput(batch_root, tmp_path):
    page = batch_root / "report.html"
    assert page.is_file()
    dom, log, events = browse(page, tmp_path, "--dump-dom")
    assert 'id="competitions"' in dom and 'id="throughput"' in dom
    for name in ("comp1", "comp2"):
        assert f'href="{name}/report.html"' in dom and (batch_root / name / "report.html").is_file()
    summary = json.loads((batch_root / "batch.json").read_text())
    assert f"{summary['throughput_per_hour']:.1f} finished per hour" in dom
    assert "2 with a verified submission" in dom
    assert dom.count("<svg") >= 2                       # when each ran, wall time per competition
    assert console_lines(log) == [] and page_requests(events) == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "batch_report.png"
    shot.unlink(missing_ok=True)
    browse(page, tmp_path, "--window-size=1200,1200", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
