#!/usr/bin/env bash
# Bank builder throughput on one GPU: the README's three presets (paper, turbo, turbo-tiny),
# each without and with SAM (random weights of the real architectures, nothing downloaded),
# one JSON per run in OUT_DIR, plus each run's log and a summary table. About 8 minutes on an
# H200; each run has its own time limit, so one that hangs costs at most its limit.
#
#   bash tools/analysis/gpu_benchmark.sh OUT_DIR
#
# Needs only what `make setup` installs (the .venv of the repository is used when present;
# PYTHON=... names another interpreter).
set -u
OUT=${1:?usage: bash tools/analysis/gpu_benchmark.sh OUT_DIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/../.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  PY=python
  [ -x .venv/bin/python ] && PY=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
: > "$OUT/summary.txt"

run() {  # run NAME LIMIT_S ARGS...: one benchmark, its JSON in OUT/NAME.json
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$PY" tools/analysis/benchmark_bank.py "$@" --json "$OUT/$name.json" \
    > "$OUT/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s ($*)" | tee -a "$OUT/summary.txt"
}

# paper: 50 steps at ~3.3 img/s, two batches of 32 per measurement
run paper 150 --preset paper
run paper-sam 150 --preset paper --segmenter sam
# 1-step generator, full VAE (~75 img/s) and tiny VAE (~250 img/s), 8 batches of 64
run turbo 110 --preset turbo --images 512
run turbo-sam 110 --preset turbo --images 512 --segmenter sam
run turbo-tiny 90 --preset turbo-tiny --images 512
run turbo-tiny-sam 90 --preset turbo-tiny --images 512 --segmenter sam

"$PY" - "$OUT" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, os, sys
out = sys.argv[1]
print(f'{"run":16} {"raw":>8} {"call":>8} {"pipeline":>9} {"ratio":>6} {"gpu %":>6} '
      f'{"GPU MiB":>8}  slowest stage')
for name in ('paper', 'paper-sam', 'turbo', 'turbo-sam', 'turbo-tiny', 'turbo-tiny-sam'):
    path = os.path.join(out, name + '.json')
    if not os.path.exists(path):
        print(f'{name:16} (no result: see {name}.log)')
        continue
    r = json.load(open(path))
    stages = {k: v for k, v in r['stages'].items() if k != 'generate'}
    slow = min(stages, key=stages.get)
    print(f'{name:16} {r["raw_generator_img_s"]:8.2f} {r["generator_img_s"]:8.2f} '
          f'{r["pipeline_img_s"]:9.2f} {r["ratio"]:6.3f} {r["gpu_utilisation"] or 0:6.1f} '
          f'{r["gpu_peak_memory_mb"] or 0:8.0f}  {slow} {stages[slow]:.1f} img/s '
          f'({stages[slow] / r["raw_generator_img_s"]:.2f}x raw)')
PYEOF
