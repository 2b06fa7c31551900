#!/usr/bin/env bash
# Set up, build the example tasks from packaged datasets, and run iml-ray on one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/make_examples.py --out examples/tasks --answers examples/answers
TASK=${1:-titanic}
.venv/bin/iml run "examples/tasks/$TASK" --out "runs/$TASK" --force
