#!/usr/bin/env bash
# The toy-world demo (`make demo`) in six steps: toy LVIS world -> toy CLIP -> generated bank
# (a generator with a domain gap, segmented, scored by the toy CLIP, filtered) -> copy-paste
# bank -> training with X-Paste -> LVIS evaluation, then one table (box and mask AP, APr, APc,
# APf). Each step's full output goes to work_dirs/demo/logs/<step>.log; the terminal shows the
# steps, a progress line for training and evaluation, and where everything is.
# Every step reuses what an earlier run left (delete data/ and work_dirs/demo to start over).
#   DEMO_ITERS   training iterations (default 300: a few minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ITERS=${DEMO_ITERS:-300}
CONFIG=configs/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py
WORK=work_dirs/demo
LOGS=$WORK/logs
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::UserWarning,ignore::DeprecationWarning}
mkdir -p "$LOGS"
SECONDS=0

step() { printf '\n[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
say() { printf '  %s\n' "$*"; }

# fail LOG: the step whose output is in LOG failed: show its end and stop
fail() {
  printf '\n  FAILED; the last lines of %s:\n' "$1" >&2
  tail -n 25 "$1" | sed 's/^/    /' >&2
  exit 1
}

# run LOG CMD...: run CMD with all its output in LOG
run() {
  local log=$1; shift
  "$@" >"$log" 2>&1 || fail "$log"
}

# done_with LOG PATTERN: report a finished step by the last log message matching PATTERN
done_with() {
  local message
  message=$({ grep -aE "$2" "$1" | tail -n 1 | sed -E 's/^.* - (INFO|WARNING) - //'; } || true)
  say "${message:-done} (log: $1)"
}

# run_with_progress LOG CMD...: as run, showing the newest "Iter(train|test) [n/N] ... eta"
# line that mmengine logs as one short progress line
run_with_progress() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  local pid=$! last='' line count eta loss
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    line=$(grep -aoE '(Iter|Epoch)\((train|test)\) +(\[ *[0-9]+\])?\[ *[0-9]+/[0-9]+\].*eta: .*' \
      "$log" | tail -n 1) || true
    if [ -z "$line" ] || [ "$line" = "$last" ]; then continue; fi
    last=$line
    count=$(sed -E 's/^[^[]*(\[ *[0-9]+\])?\[ *([0-9]+\/[0-9]+)\].*/\2/' <<<"$line")
    eta=$(grep -oE 'eta: [0-9:]+' <<<"$line" | cut -d' ' -f2) || true
    loss=$(grep -oE '  loss: [0-9.]+' <<<"$line" | awk '{print $2}') || true
    line="  $count${eta:+  eta $eta}${loss:+  loss $loss}"
    if [ -t 1 ]; then printf '\r\033[K%s' "$line"; else printf '%s\n' "$line"; fi
  done
  if [ -t 1 ] && [ -n "$last" ]; then printf '\n'; fi
  wait "$pid" || fail "$log"
}

step "1/6 toy LVIS world -> data/toy_lvis"
if [ ! -f data/toy_lvis/annotations/lvis_v1_val.json ]; then
  run "$LOGS/1_toy_world.log" $PY tools/data/make_toy_lvis.py --out data/toy_lvis
  done_with "$LOGS/1_toy_world.log" 'toy LVIS world in'
else
  say "exists, reused"
fi

step "2/6 toy CLIP (trained once on the toy train split; reused while its settings match)"
run "$LOGS/2_toy_clip.log" $PY tools/toy/train_clip.py --out work_dirs/toy_clip
done_with "$LOGS/2_toy_clip.log" 'toy CLIP: (trained in|.* is up to date)'

step "3/6 generated bank: generator with a gap -> segmenter -> toy CLIP -> filters -> data/banks/toy_generated"
run "$LOGS/3_bank_build.log" $PY tools/bank/build.py configs/bank/toy_gap.py \
  --work-dir $WORK/bank_build --bank-dir data/banks/toy_generated --no-progress
done_with "$LOGS/3_bank_build.log" 'bank written: |is up to date'
# what the filters let through: the generator tags each image with its defect
$PY tools/toy/count_defects.py data/banks/toy_generated 2>>"$LOGS/3_bank_build.log" | $PY -c '
import json, sys
for bank in json.load(sys.stdin).values():
    n, wrong = bank["instances"], 100 * bank["wrong_fraction"]
    print(f"  {n} instances, {wrong:.1f} % of them wrong (another class, two objects, truncated)")'

step "4/6 copy-paste bank: the training set's own instances -> data/banks/toy_train_instances"
if [ ! -f data/banks/toy_train_instances/manifest.json ]; then
  run "$LOGS/4_copy_paste_bank.log" $PY tools/bank/from_annotations.py \
    data/toy_lvis/annotations/lvis_v1_train.json data/toy_lvis data/banks/toy_train_instances \
    --no-progress
  done_with "$LOGS/4_copy_paste_bank.log" 'instances of [0-9]+ categories'
else
  say "exists, reused"
fi

step "5/6 training with X-Paste from the generated bank: $ITERS iterations"
say "$CONFIG (log: $LOGS/5_train.log)"
# evaluated once, in step 6
run_with_progress "$LOGS/5_train.log" $PY tools/train.py $CONFIG --work-dir $WORK/train \
  --cfg-options train_cfg.max_iters=$ITERS default_hooks.checkpoint.interval=$ITERS \
  val_cfg=None val_dataloader=None val_evaluator=None

step "6/6 LVIS evaluation of the last checkpoint"
say "log: $LOGS/6_test.log"
run_with_progress "$LOGS/6_test.log" $PY tools/test.py $CONFIG $WORK/train/iter_$ITERS.pth \
  --work-dir $WORK/test

printf '\nResult on the toy LVIS val split (%s iterations; LVIS AP in %%):\n\n' "$ITERS"
$PY - "$WORK/test" <<'EOF'
import sys

from xpaste.utils.metrics import METRICS, TASK_TITLES, TASKS, load_latest_metrics

run = load_latest_metrics(sys.argv[1])
print('         ' + ''.join(f'{m:>7}' for m in METRICS))
for task in TASKS:
    print(f'  {TASK_TITLES[task]:<7}'
          + ''.join(f'{100 * run.metrics[f"lvis/{task}_{m}"]:7.1f}' for m in METRICS))
print(f'\n  metrics:     {run.source}')
EOF
say "checkpoint:  $WORK/train/iter_$ITERS.pth"
say "bank report: $WORK/bank_build/report/index.html"
say "full logs:   $LOGS/ (and mmengine's own logs in $WORK/train/ and $WORK/test/)"
printf '\nDone in %dm %02ds.\n' $((SECONDS / 60)) $((SECONDS % 60))
