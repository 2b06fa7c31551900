#!/usr/bin/env bash
# Set up, build the example tasks from packaged datasets, and run iml-ray on one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/make_examples.py --out examples/tasks --answers examples/answers
TASK=${1:-titanic}
# Two minutes: tracks improve while time is left, so the default 600 s budget would be spent to the end.
BUDGET=${BUDGET:-120}
.venv/bin/iml run "examples/tasks/$TASK" --out "runs/$TASK" --force --time-budget "$BUDGET"
