#!/usr/bin/env bash
# The GPU suite as one prepared command (the package benchmarks/gpu_suite/; arguments pass through):
#   bash benchmarks/gpu_suite.sh                    # on a GPU: results in a new outputs/benchmarks/gpu_suite/<time>/
#   bash benchmarks/gpu_suite.sh --out DIR          # a new or empty folder; a used one is refused
#   bash benchmarks/gpu_suite.sh --dry-run          # CPU smoke run at tiny sizes, marked dry_run (never a GPU figure)
# Every model is random init (model.weights=none): nothing is downloaded, and throughput does not depend on weights.
# The suite stops each part at its own budget; GPU_SUITE_HARD_CAP_S (default 480 s) is a last resort on the whole
# command, after which the results written so far (rewritten after every part) remain.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi

export PYTHONUNBUFFERED=1                             # progress lines as they happen
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1         # no hub access is needed: weights are random init
export TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's transferlab

cap="${GPU_SUITE_HARD_CAP_S:-480}"
if command -v timeout >/dev/null 2>&1; then
  exec timeout --signal=TERM --kill-after=20 "$cap" "$PYTHON" "$here/gpu_suite" "$@"
fi
exec "$PYTHON" "$here/gpu_suite" "$@"
