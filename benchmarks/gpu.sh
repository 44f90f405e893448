#!/usr/bin/env bash
# Every benchmark suite (beta_bernoulli_sample, probit_scoring, hill_climb, ope,
# membership_counterfactual) and the
# membership whole-fit benchmark on a GPU machine, in one call from the repo root:
#
#   bash benchmarks/gpu.sh [extra flags for benchmarks/run.py, passed to every suite]
#
# Needs jax with CUDA and the project's dependencies already installed; no network and no
# install step (the package comes from the checkout through PYTHONPATH). Results go to $OUT when
# it is set (the device tool returns what is written there), else benchmarks/results/gpu:
# <suite>.json, <suite>.md and <suite>.stderr.log (progress bar, warnings, any traceback).
#
# Time budget, under 11 minutes so that it fits a 15-minute device lease with the machine's
# start: each suite runs in its own process; each row gets ROW_SECONDS (default 15); no row
# starts after SUITE_SECONDS (default 85) of its suite; each suite is interrupted after
# HARD_LIMIT_SECONDS (default 110), the membership benchmark after MEMBERSHIP_SECONDS (default
# 90): 5 x 110 + 90 = 640 s at most. Results are rewritten after every row, so an interrupted
# run keeps the rows it finished.
set -uo pipefail
cd "$(dirname "$0")/.."

out_dir="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out_dir"
python_bin="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi -L || echo "nvidia-smi: not available"
"$python_bin" -c 'import jax; print("jax", jax.__version__, jax.devices())'

final=0
suites="beta_bernoulli_sample probit_scoring hill_climb ope membership_counterfactual"
for suite in $suites; do
  timeout --signal=INT --kill-after=20 "${HARD_LIMIT_SECONDS:-110}" \
    "$python_bin" benchmarks/run.py --suite "$suite" --gpu --out "$out_dir" \
    --max-seconds "${ROW_SECONDS:-15}" --total-seconds "${SUITE_SECONDS:-85}" "$@" \
    2>"$out_dir/$suite.stderr.log"
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "benchmarks/run.py --suite $suite exited with status $status; last lines of its stderr:"
    tail -c 3000 "$out_dir/$suite.stderr.log" | tr '\r' '\n' | tail -n 25
    final=$status
  fi
done

timeout --signal=INT --kill-after=20 "${MEMBERSHIP_SECONDS:-90}" \
  "$python_bin" benchmarks/membership.py --members 1e6 --months 36 --solves 1000 --lanes 1000 \
  --numpy-solves 4 --numpy-full-solves 2 --pqr-replicates 1000 --pqr-numpy 50 \
  --bandwidth-mib 256 --repeats 3 --out "$out_dir" 2>"$out_dir/membership.stderr.log" \
  || { echo "benchmarks/membership.py failed or ran out of time"; final=1; }

for suite in $suites membership; do
  cat "$out_dir/$suite.md" 2>/dev/null || echo "$suite: no results written"
done
exit "$final"
