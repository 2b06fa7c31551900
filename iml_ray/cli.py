"""`iml` — the command line.

Only argparse is imported at module level, so `iml --help` is instant; the
engine (Ray, pandas, sklearn) loads when a command runs.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from iml_ray.report.cli_output import batch_table, print_batch_summary, print_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="iml", description="iml-ray: code-driven AutoML on Ray.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser("run", help="solve one competition: verified submission.csv + standalone pipeline.py",
                              description="Solve one task directory (MLE-bench layout) end to end.")
    run.add_argument("task_dir", help="directory with train.csv and test.csv (or train/<class>/ and test/ image folders), "
                                      "sample_submission.csv, description.md")
    run.add_argument("--out", help="output directory (default: runs/<task name>)")
    run.add_argument("--time-budget", type=float, metavar="SECONDS", help="wall-clock budget for the whole run (default 600)")
    add_shared_arguments(run)
    group = run.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the earlier run in --out")
    group.add_argument("--force", action="store_true", help="replace the earlier run in --out")

    batch = commands.add_parser("batch", help="solve many competitions concurrently on one Ray cluster",
                                description="Run several task directories; each gets ROOT/<name>/. Rerunning the same "
                                            "command skips finished competitions and resumes unfinished ones.")
    batch.add_argument("task_dirs", nargs="+",
                       help="task directories (MLE-bench layout), or one manifest YAML listing them (per task: "
                            "path, time_budget, name, overrides)")
    batch.add_argument("--out", required=True, help="root directory for the runs and batch.json")
    batch.add_argument("--time-budget", type=float, metavar="SECONDS", help="budget per competition (default 600)")
    batch.add_argument("--max-concurrent", type=int, help="competitions at once (default: the cluster's CPUs)")
    batch.add_argument("--retry-failed", action="store_true", help="run again the competitions that failed before")
    add_shared_arguments(batch)

    serve = commands.add_parser("serve-llm", help="serve a local model on the cluster behind an OpenAI-compatible route",
                                description="Start (or find) the cluster's server of a local model, the one `--llm "
                                            "local:MODEL` runs use, and answer POST /v1/chat/completions with it "
                                            "until Ctrl-C. Joins RAY_ADDRESS when set, else starts a local Ray.")
    serve.add_argument("model", type=llm_choice, metavar="local:MODEL",
                       help="a checkpoint directory, a .gguf file or a hub id, after local:")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    serve.add_argument("--config", type=Path, help="YAML file whose llm: section sets the server (local_* settings)")

    report = commands.add_parser("report", help="rebuild report.html of a run (or a batch) and show its leaderboard",
                                 description="Regenerate RUN_DIR/report.html and print the run's summary; for an "
                                             "`iml batch` output root, regenerate the batch's report.html.")
    report.add_argument("run_dir", help="the --out directory of an `iml run` or `iml batch`")
    return parser


def llm_choice(value: str) -> str:
    if value in ("rules", "openai", "local") or value.startswith("local:"):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice: '{value}' (choose rules, openai or local:MODEL)")


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `iml run` and `iml batch` share (a batch applies them to every competition)."""
    parser.add_argument("--seed", type=int, help="seed of the validation split and the models (default 0)")
    parser.add_argument("--tracks", help="comma-separated tracks to explore: traditional, pretrained, custom_nn "
                                         "(default: all; those that do not fit the data are skipped)")
    parser.add_argument("--gpus-per-track", type=float, metavar="N",
                        help="GPUs (possibly fractional) per pretrained/custom_nn track "
                             "(default: one each when the cluster has GPUs)")
    parser.add_argument("--tune", choices=("auto", "on", "off"),
                        help="Ray Tune inside the generated code: auto (default) tunes when a track has time for it")
    parser.add_argument("--ensemble", choices=("best", "stack"),
                        help="stack (default): blend the top candidates when that beats the best one on validation "
                             "rows the blend was not fitted on, else the best; best: the best validated candidate")
    parser.add_argument("--config", type=Path, help="YAML file with RunConfig fields")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--llm", type=llm_choice, metavar="{rules,openai,local:MODEL}",
                        help="who writes the plan and the code: rules (default; no network), openai (any "
                             "OpenAI-compatible endpoint: OPENAI_BASE_URL, OPENAI_API_KEY, IML_LLM_MODEL) or "
                             "local:MODEL (a checkpoint directory, a .gguf file or a hub id, served once on the "
                             "cluster for every competition), with the rules as fallback")
    parser.add_argument("--llm-model", help="model name for every agent (default: IML_LLM_MODEL or gpt-4o-mini)")
    parser.add_argument("--max-llm-cost", type=float, metavar="USD",
                        help="LLM spend per competition past which the run continues on rules")
    parser.add_argument("--max-llm-tokens", type=int, metavar="N",
                        help="LLM tokens per competition past which the run continues on rules")
    parser.add_argument("--llm-replay", action="store_true",
                        help="answer every LLM call from the response cache; a cache miss is an error")
    parser.add_argument("--track-retries", type=int, metavar="N",
                        help="run a track again when its Ray worker dies (default 0: that candidate fails)")
    parser.add_argument("--allow-network", action="store_true",
                        help="let generated code use the network (default: none, where the kernel allows "
                             "isolating it), e.g. for a pretrained track that downloads from a model hub")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="the Ray cluster to join (default: RAY_ADDRESS; without it a local Ray is started)")
    parser.add_argument("--keep-agents", action="store_true",
                        help="keep the agents' actors on the cluster after the job, for later jobs to reuse "
                             "(they start in no time then; default: they end with the job)")
    parser.add_argument("--strip-description", action="store_true",
                        help="replace the task description with a generic sentence (the iML robustness study)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from iml_ray import __version__

        print(f"iml-ray {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        return _run(args)
    if args.command == "report":
        return _report(args)
    if args.command == "batch":
        return _batch(args)
    if args.command == "serve-llm":
        return _serve_llm(args)
    return 2


def _run(args: argparse.Namespace) -> int:
    from iml_ray.errors import UserError

    level = logging.DEBUG if args.verbose else logging.INFO
    console = None
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        # Log lines go through the live display's console so they print above it, not through it.
        console = Console(stderr=True)
        logging.basicConfig(level=level, format="%(message)s",
                            handlers=[RichHandler(console=console, show_time=False, show_path=False, markup=False)])
    else:
        logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for noisy in ("ray", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = _config(args)
        task_dir = Path(args.task_dir)
        out = Path(args.out) if args.out else Path("runs") / _task_name(task_dir)
        from iml_ray.run.engine import Run
        from iml_ray.run.progress import LogProgress, RichProgress

        progress = RichProgress(config.time_budget_s, console) if console else LogProgress(config.time_budget_s)
        try:
            result = Run(task_dir, out, config, resume=args.resume, force=args.force, progress=progress).execute()
        finally:
            progress.close()
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        return _no_space(exc)
    except KeyboardInterrupt:
        print("interrupted: the run directory is resumable with --resume", file=sys.stderr)
        return 130
    print_summary(result.report, result.out)
    return 0 if result.status == "ok" else 1


def _serve_llm(args: argparse.Namespace) -> int:
    import threading

    from iml_ray.errors import ConfigError, UserError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("ray").setLevel(logging.WARNING)
    try:
        if not args.model.startswith("local:"):
            raise ConfigError(f"serve-llm serves a local model, got '{args.model}'",
                              "Write e.g. iml serve-llm local:/models/m.gguf.")
        from iml_ray.config import RunConfig

        loaded = RunConfig.from_yaml(args.config).llm if args.config else {}
        from iml_ray.llm.settings import LLMSettings

        settings = LLMSettings.from_json({**{k: v for k, v in loaded.items() if k != "model"}, "model": args.model})
        from iml_ray.run.ray_session import ray_session

        with ray_session():
            from actors.llm import local_model_server, server_stats
            from iml_ray.llm.brain import LocalServerHandle
            from iml_ray.llm.serving.http_route import ModelRoute

            handle = local_model_server(args.model, settings)
            stats = server_stats(handle)
            if "error" in stats:
                raise ConfigError(f"the local model did not load: {stats['error']}", "Check the path or hub id and the backend.")
            try:
                route = ModelRoute(LocalServerHandle(handle, settings.timeout_s).chat, args.model, args.host, args.port,
                                   settings.max_output_tokens).start()
            except OSError as exc:
                raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", "Choose another --port.") from None
            print(f"serving {args.model} ({stats['backend']} on {stats['device']}, loaded in {stats['load_s']} s) "
                  f"at {route.url}", file=sys.stderr, flush=True)
            try:
                threading.Event().wait()
            finally:
                route.stop()
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


def _batch(args: argparse.Namespace) -> int:
    from iml_ray.errors import UserError

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("ray").setLevel(logging.WARNING)
    try:
        config = _config(args)
        from iml_ray.run.batch import run_batch

        last: list = []
        live = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            live = Live(console=Console(stderr=True), refresh_per_second=2, transient=True)
            live.start()

        def show(rows):
            if live is not None:
                live.update(batch_table(rows))
                return
            line = ", ".join(f"{r['name']}: {r['phase']}" + ("" if r["score"] is None else f" {r['score']:.4g}")
                             for r in rows)
            if line != (last[0] if last else None):
                logging.getLogger("iml_ray.run.batch").info(line)
                last[:] = [line]

        tasks = args.task_dirs
        if len(tasks) == 1 and tasks[0].endswith((".yaml", ".yml")) and Path(tasks[0]).is_file():
            from iml_ray.run.batch import read_manifest

            tasks = read_manifest(Path(tasks[0]), config)
        try:
            summary = run_batch(tasks, Path(args.out), config, max_concurrent=args.max_concurrent,
                                retry_failed=args.retry_failed, on_update=show)
        finally:
            if live is not None:
                live.stop()
    except UserError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        return _no_space(exc)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    print_batch_summary(summary, Path(args.out))
    # Unsupported tasks are said in the summary; they are not failures of the batch.
    failed = [c for c in summary["competitions"] if c["status"] != "unsupported" and (c["status"] == "failed" or c.get("error"))]
    return 1 if failed else 0


def _no_space(exc: OSError) -> int:
    """A full disk met outside the run directory's writers (which raise NoSpaceError themselves): the same two lines."""
    from iml_ray.errors import NoSpaceError
    from iml_ray.rundir import NO_SPACE

    if exc.errno not in NO_SPACE:
        raise exc
    error = NoSpaceError(exc.filename or "the output")
    print(error.render(), file=sys.stderr)
    return error.exit_code


def _config(args: argparse.Namespace):
    from iml_ray.config import RunConfig

    overrides = {"time_budget_s": args.time_budget, "seed": args.seed,
                 "tracks": tuple(t.strip() for t in args.tracks.split(",")) if args.tracks else None,
                 "gpus_per_track": getattr(args, "gpus_per_track", None), "tune": getattr(args, "tune", None),
                 "ensemble": getattr(args, "ensemble", None), "policy": _policy(getattr(args, "llm", None)),
                 "strip_description": True if getattr(args, "strip_description", False) else None,
                 "track_retries": getattr(args, "track_retries", None),
                 "allow_network": True if getattr(args, "allow_network", False) else None}
    llm = {"model": getattr(args, "llm_model", None), "max_cost_usd": getattr(args, "max_llm_cost", None),
           "max_tokens": getattr(args, "max_llm_tokens", None), "replay": True if getattr(args, "llm_replay", False) else None}
    llm = {k: v for k, v in llm.items() if v is not None}
    chosen = getattr(args, "llm", None) or ""
    if chosen.startswith("local:"):
        if llm.get("model", chosen) != chosen:
            from iml_ray.errors import ConfigError

            raise ConfigError(f"--llm {chosen} and --llm-model {llm['model']} name two models",
                              "Give the local model once: --llm local:MODEL.")
        llm["model"] = chosen
    if llm:
        overrides["llm"] = llm
    if args.config:
        config = RunConfig.from_yaml(args.config, **overrides)
    else:
        config = RunConfig.from_mapping({k: v for k, v in overrides.items() if v is not None})
    if getattr(args, "keep_agents", False):
        config = config.replace(agents={**config.agents, "keep": True})
    if getattr(args, "address", None):
        import os

        os.environ["RAY_ADDRESS"] = args.address      # read by ray_session, as when `ray job submit` sets it
    return config      # its LLM section is checked by Run.execute and run_batch, before anything is written


def _policy(llm: str | None) -> str | None:
    return "local" if llm and llm.startswith("local") else llm


def _task_name(task_dir: Path) -> str:
    resolved = task_dir.expanduser().resolve()
    return resolved.parent.name if resolved.name == "public" else resolved.name


def _report(args: argparse.Namespace) -> int:
    import json

    if (Path(args.run_dir) / "batch.json").is_file() and not (Path(args.run_dir) / "report.json").is_file():
        from iml_ray.report.batch_report import write_batch_report

        html_path = write_batch_report(Path(args.run_dir))
        print(f"report.html: {html_path}" if html_path else "error: could not write the batch report (see the log)")
        return 0 if html_path else 1
    path = Path(args.run_dir) / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"error: {path} does not exist.\n       Pass the --out directory of a finished `iml run`.", file=sys.stderr)
        return 2
    except ValueError:
        print(f"error: {path} is not valid JSON.\n       Rerun the task (iml run ... --force).", file=sys.stderr)
        return 2
    from iml_ray.report.run_report import write_html_report

    html_path = write_html_report(Path(args.run_dir))
    print_summary(report, Path(args.run_dir))
    if html_path:
        print(f"report.html: {html_path}")
    return 0 if report.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
