"""Generated code runs contained: no secrets, limits enforced, the whole tree dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from iml_ray.safety.sandbox import SandboxLimits, clean_env, run_python

LIMITS = SandboxLimits(timeout_s=30, memory_mb=2000)


def _script(tmp_path: Path, body: str, name: str = "gen.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_generated_code_never_sees_api_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-456")
    script = _script(tmp_path, "import os\nfor k, v in sorted(os.environ.items()):\n    print(k, '=', v)\n")
    result = run_python(script, [], tmp_path / "work", LIMITS)
    out = result.stdout_tail(100_000)
    assert result.status == "ok"
    for secret in ("sk-test-secret", "tok-123", "aws-456", "OPENAI_API_KEY"):
        assert secret not in out
    assert "PATH =" in out


def test_clean_env_keeps_ordinary_variables():
    env = clean_env({"PATH": "/bin", "HOME": "/root", "OPENAI_BASE_URL": "http://x", "HF_TOKEN": "t", "LANG": "C"})
    assert env["PATH"] == "/bin" and env["HOME"] == "/root" and env["LANG"] == "C"
    assert "OPENAI_BASE_URL" not in env and "HF_TOKEN" not in env
    assert env["PYTHONHASHSEED"] == "0"


def test_timeout_kills_children_and_grandchildren(tmp_path):
    pids = tmp_path / "work" / "pids.txt"            # in its working directory: the only place it may write
    script = _script(tmp_path, f"""
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        # a child that spawns its own grandchild, all ignoring SIGTERM
        child = subprocess.Popen([sys.executable, "-c",
            "import subprocess, sys, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "g = subprocess.Popen([sys.executable, '-c', "
            f"{repr('import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)')}]); "
            "open({repr(str(pids))}, 'a').write(str(g.pid) + chr(10)); time.sleep(300)"])
        sleeper = subprocess.Popen(["sleep", "300"])
        with open({repr(str(pids))}, "a") as handle:
            handle.write(f"{{os.getpid()}}\\n{{child.pid}}\\n{{sleeper.pid}}\\n")
        while True:
            time.sleep(0.1)
    """)
    result = run_python(script, [], tmp_path / "work", SandboxLimits(timeout_s=3, memory_mb=2000))
    assert result.status == "timeout"
    assert 3 <= result.wall_s < 10
    written = [int(p) for p in pids.read_text().split()]
    assert len(written) == 4, "the script started its whole tree before the timeout"
    time.sleep(0.5)
    assert all(_dead(pid) for pid in written), [pid for pid in written if not _dead(pid)]


def test_memory_limit_is_enforced(tmp_path):
    script = _script(tmp_path, """
        import time
        chunks = []
        while True:
            chunks.append(bytearray(50 * 2**20))   # bytearray zero-fills: the pages are touched
            time.sleep(0.02)
    """)
    result = run_python(script, [], tmp_path / "work", SandboxLimits(timeout_s=30, memory_mb=300))
    assert result.status == "memory"
    assert result.peak_rss_mb > 300
    assert "memory limit" in result.describe()


def test_output_flood_is_capped(tmp_path):
    script = _script(tmp_path, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n")
    result = run_python(script, [], tmp_path / "work", SandboxLimits(timeout_s=30, memory_mb=2000, max_log_bytes=2_000_000))
    assert result.status == "output_limit"
    assert result.stdout_path.stat().st_size <= 2_000_000


def test_failure_and_success_are_reported(tmp_path):
    bad = _script(tmp_path, "raise ValueError('columns do not match')\n", "bad.py")
    result = run_python(bad, [], tmp_path / "bad", LIMITS)
    assert result.status == "error" and result.returncode == 1
    assert "ValueError: columns do not match" in result.describe()
    good = _script(tmp_path, "import os\nprint(os.getcwd())\n", "good.py")
    result = run_python(good, [], tmp_path / "good", LIMITS)
    assert result.status == "ok"
    assert result.stdout_tail().strip() == str((tmp_path / "good").resolve())


def test_devices_and_threads(tmp_path):
    script = _script(tmp_path, "import os\nprint(repr(os.environ['CUDA_VISIBLE_DEVICES']), os.environ.get('OMP_NUM_THREADS'))\n")
    result = run_python(script, [], tmp_path / "a", SandboxLimits(timeout_s=30, memory_mb=2000, cpus=3))
    assert result.stdout_tail().strip() == "'' 3"
    result = run_python(script, [], tmp_path / "b", SandboxLimits(timeout_s=30, memory_mb=2000, gpu_ids=(0, 1)))
    assert result.stdout_tail().strip().startswith("'0,1'")


def test_child_stays_in_the_callers_process_group(tmp_path):
    # So Ray's cleanup of a worker's process group reaches generated code.
    script = _script(tmp_path, "import os\nprint(os.getpgid(0))\n")
    result = run_python(script, [], tmp_path / "w", LIMITS)
    assert int(result.stdout_tail().strip()) == os.getpgid(0)


def test_child_dies_with_its_supervisor(tmp_path):
    pid_file = tmp_path / "w" / "child.pid"          # in its working directory: the only place it may write
    target = _script(tmp_path, "import os, time\nopen('child.pid', 'w').write(str(os.getpid()))\ntime.sleep(300)\n",
                     "forever.py")
    supervisor = _script(tmp_path, f"""
        from pathlib import Path
        from iml_ray.safety.sandbox import SandboxLimits, run_python
        run_python(Path({str(target)!r}), [], Path({str(tmp_path / 'w')!r}), SandboxLimits(timeout_s=300, memory_mb=2000))
    """, "supervisor.py")
    proc = subprocess.Popen([sys.executable, str(supervisor)])
    deadline = time.time() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the sandboxed child never started"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while not _dead(child) and time.time() < deadline:
        time.sleep(0.1)
    assert _dead(child), "PR_SET_PDEATHSIG should have killed the child with its supervisor"


def test_open_file_limit(tmp_path):
    script = _script(tmp_path, """
        import os
        handles = []
        try:
            for i in range(10000):
                handles.append(open(os.devnull))
        except OSError as exc:
            print("stopped at", len(handles), exc.errno)
    """)
    result = run_python(script, [], tmp_path / "w", SandboxLimits(timeout_s=30, memory_mb=2000, max_open_files=64))
    words = result.stdout_tail().split()
    assert words[:2] == ["stopped", "at"] and int(words[2]) < 64


def test_disk_use_of_the_working_directory_is_capped(tmp_path):
    script = _script(tmp_path, """
        import time
        with open("big.bin", "wb") as handle:
            while True:
                handle.write(b"0" * 2**20)
                handle.flush()
                time.sleep(0.005)
    """)
    result = run_python(script, [], tmp_path / "w", SandboxLimits(timeout_s=60, memory_mb=2000, max_disk_bytes=50 * 2**20))
    assert result.status == "disk_limit"
    assert "working directory" in result.describe()


# ------------------------------------------------------------------ containment beyond limits

def test_this_machine_isolates_network_and_data():
    """The CI machine allows the namespaces; a machine that does not is told at start-up (containment())."""
    from iml_ray.safety.sandbox import containment

    caps = containment()
    assert caps.network and caps.read_only and caps.writes, caps.describe()


def test_it_writes_nowhere_but_its_working_directory(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    script = _script(tmp_path, f"""
        import os, tempfile
        results = {{}}
        for name, path in (("workdir", "mine.txt"), ("shm", "/dev/shm/iml-test-{os.getpid()}"),
                           ("outside", {str(outside / 'escape.txt')!r}), ("tmp", "/tmp/iml-escape-{os.getpid()}"),
                           ("home", os.path.expanduser("~/note.txt")), ("tempfile", tempfile.gettempdir() + "/t.txt")):
            try:
                with open(path, "w") as handle:
                    handle.write("x")
                results[name] = "written"
            except OSError as exc:
                results[name] = exc.strerror
        os.unlink("/dev/shm/iml-test-{os.getpid()}")
        print(results)
    """)
    result = run_python(script, [], tmp_path / "w", LIMITS)
    assert result.status == "ok", result.stderr_tail()
    results = eval(result.stdout_tail().strip())
    # HOME and TMPDIR point inside the working directory; /dev/shm is shared memory, not disk.
    assert results == {"workdir": "written", "shm": "written", "outside": "Read-only file system",
                       "tmp": "Read-only file system", "home": "written", "tempfile": "written"}
    assert not (outside / "escape.txt").exists() and not Path(f"/tmp/iml-escape-{os.getpid()}").exists()
    assert (tmp_path / "w" / "mine.txt").read_text() == "x"


def _listening_socket():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("connected")
except OSError as exc:
    print("refused:", exc)
"""


def test_generated_code_has_no_network_unless_allowed(tmp_path):
    server = _listening_socket()
    port = str(server.getsockname()[1])
    try:
        script = _script(tmp_path, CONNECT)
        closed = run_python(script, [port], tmp_path / "closed", LIMITS)
        opened = run_python(script, [port], tmp_path / "open", SandboxLimits(timeout_s=30, memory_mb=2000, network=True))
    finally:
        server.close()
    assert closed.status == "ok" and "refused" in closed.stdout_path.read_text()
    assert opened.status == "ok" and "connected" in opened.stdout_path.read_text()


def test_task_data_is_read_only_and_home_writes_land_in_the_working_directory(tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    (task / "train.csv").write_text("a,b\n1,2\n")
    script = _script(tmp_path, f"""
        import os
        print(open({str(task / 'train.csv')!r}).read().splitlines()[0])
        for attempt in ("overwrite", "create"):
            try:
                open({str(task / 'train.csv')!r} if attempt == "overwrite" else {str(task / 'new.txt')!r}, "w").write("x")
                print(attempt, "succeeded")
            except OSError as exc:
                print(attempt, "refused:", exc.strerror)
        open(os.path.expanduser("~/dropped.txt"), "w").write("x")
        open("out.txt", "w").write("fine")
    """)
    limits = SandboxLimits(timeout_s=30, memory_mb=2000, read_only=(str(task),))
    result = run_python(script, [], tmp_path / "work", limits)
    out = result.stdout_path.read_text()
    assert result.status == "ok", result.stderr_tail()
    assert out.splitlines()[0] == "a,b"
    assert "overwrite refused: Read-only file system" in out and "create refused: Read-only file system" in out
    assert (task / "train.csv").read_text() == "a,b\n1,2\n" and not (task / "new.txt").exists()
    assert (tmp_path / "work" / ".home" / "dropped.txt").is_file()
    assert (tmp_path / "work" / "out.txt").read_text() == "fine"


def test_a_working_directory_inside_the_read_only_paths_stays_writable(tmp_path):
    """The run directory is read-only for generated code but for its own round (and the paths it is given)."""
    task = tmp_path / "task"
    run = tmp_path / "run"
    (task / "runs" / "cand").mkdir(parents=True)
    (run / "candidates" / "other").mkdir(parents=True)
    script = _script(tmp_path, f"""
        open('out.txt', 'w').write('ok')
        open({str(run / 'cache' / 'x.npy')!r}, 'w').write('cached')
        try:
            open({str(run / 'candidates' / 'other' / 'x.py')!r}, 'w').write('x')
        except OSError as exc:
            print('refused:', exc.strerror)
    """)
    limits = SandboxLimits(timeout_s=30, memory_mb=2000, read_only=(str(task), str(tmp_path), str(run)),
                           writable=(str(run / "cache"),))
    for workdir in (task / "runs" / "cand", run / "candidates" / "mine" / "round_1"):
        result = run_python(script, [], workdir, limits)
        assert result.status == "ok", result.stderr_tail()
        assert (workdir / "out.txt").read_text() == "ok"
        assert "refused: Read-only file system" in result.stdout_path.read_text()
    assert (run / "cache" / "x.npy").read_text() == "cached"
    assert not (run / "candidates" / "other" / "x.py").exists()


def test_too_many_processes_stop_the_tree(tmp_path):
    script = _script(tmp_path, """
        import subprocess, sys, time
        children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(12)]
        time.sleep(60)
    """)
    result = run_python(script, [], tmp_path / "work", SandboxLimits(timeout_s=40, memory_mb=4000, max_processes=8))
    assert result.status == "process_limit" and result.wall_s < 30
    assert "more than 8 processes" in result.describe()


def test_other_candidates_are_hidden_and_its_own_track_is_read_only(tmp_path):
    run = tmp_path / "run"
    other = run / "candidates" / "custom_nn"
    mine = run / "candidates" / "traditional"
    other.mkdir(parents=True)
    (mine / "round_1").mkdir(parents=True)
    (other / "model.py").write_text("secret = 1\n")
    (mine / "prep.py").write_text("mine = 1\n")
    script = _script(tmp_path, f"""
        import os
        print("listing:", sorted(os.listdir({str(run / 'candidates')!r})))
        for path in ({str(other / 'model.py')!r}, {str(mine / 'prep.py')!r}):
            try:
                print("read", os.path.basename(path), open(path).read().strip())
            except OSError as exc:
                print("cannot read", os.path.basename(path), exc.strerror)
        try:
            open({str(mine / 'prep.py')!r}, "w").write("changed")
        except OSError as exc:
            print("cannot write prep.py:", exc.strerror)
        open("output.txt", "w").write("ok")
    """)
    limits = SandboxLimits(timeout_s=30, memory_mb=2000, read_only=(str(run),), hidden=str(run / "candidates"),
                           exposed=(str(mine),))
    result = run_python(script, [], mine / "round_1", limits)
    out = result.stdout_path.read_text()
    assert result.status == "ok", result.stderr_tail()
    assert "listing: ['traditional']" in out
    assert "cannot read model.py No such file or directory" in out and "read prep.py mine = 1" in out
    assert "cannot write prep.py: Read-only file system" in out
    assert (mine / "round_1" / "output.txt").read_text() == "ok" and (other / "model.py").read_text() == "secret = 1\n"


def test_a_pipeline_stopped_after_writing_its_outputs_counts_as_finished_one_stopped_mid_write_does_not(tmp_path):
    """The runner writes run_info.json last: a pipeline whose time limit stopped it after that write had done its
    work (it was exiting); one stopped before it, or mid-write, had not."""
    from iml_ray.track.checks import finished_before_stopped

    def run(name, body):
        script = tmp_path / f"{name}.py"
        out = tmp_path / name / "work" / "output"        # where the sandbox lets it write
        script.write_text("import json, os, time\n"
                          f"out = {str(out)!r}\nos.makedirs(out)\n"
                          "open(os.path.join(out, 'submission.csv'), 'w').write('id,y\\n1,0\\n')\n" + body)
        result = run_python(script, [], tmp_path / name / "work", SandboxLimits(timeout_s=3, memory_mb=2000))
        return result, out

    done, out = run("done", "json.dump({'final': {}}, open(os.path.join(out, 'run_info.json'), 'w'))\ntime.sleep(30)\n")
    assert done.status == "timeout" and finished_before_stopped(done, out)
    working, out = run("working", "time.sleep(30)\n")
    assert working.status == "timeout" and not finished_before_stopped(working, out)
    partial, out = run("partial", "handle = open(os.path.join(out, 'run_info.json'), 'w')\n"
                                  "handle.write('{\"final\": '); handle.flush(); time.sleep(30)\n")
    assert partial.status == "timeout" and not finished_before_stopped(partial, out)
    failed, out = run("failed", "json.dump({'final': {}}, open(os.path.join(out, 'run_info.json'), 'w'))\n"
                                "raise SystemExit(1)\n")
    assert failed.status == "error" and not finished_before_stopped(failed, out)
