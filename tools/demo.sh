#!/usr/bin/env bash
# The toy-world demo (`make demo`): data -> banks -> training with X-Paste -> LVIS evaluation.
# Every step reuses what an earlier run left (delete data/ and work_dirs/demo to start over).
#   DEMO_ITERS   training iterations (default 300: a few minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ITERS=${DEMO_ITERS:-300}
CONFIG=configs/toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py
WORK=work_dirs/demo
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::UserWarning,ignore::DeprecationWarning}

step() { printf '\n==== [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "1/5 toy LVIS world -> data/toy_lvis"
if [ ! -f data/toy_lvis/annotations/lvis_v1_val.json ]; then
  $PY tools/data/make_toy_lvis.py --out data/toy_lvis
else
  echo "exists"
fi

step "2/5 generated bank (toy source -> segmenter -> filters) -> data/banks/toy_generated"
$PY tools/bank/build.py configs/bank/toy.py --work-dir $WORK/bank_build \
  --bank-dir data/banks/toy_generated
echo "bank report: $WORK/bank_build/report/index.html"

step "3/5 copy-paste bank from the training set's own instances -> data/banks/toy_train_instances"
if [ ! -f data/banks/toy_train_instances/manifest.json ]; then
  $PY tools/bank/from_annotations.py data/toy_lvis/annotations/lvis_v1_train.json data/toy_lvis \
    data/banks/toy_train_instances
else
  echo "exists"
fi

step "4/5 train $CONFIG for $ITERS iterations (X-Paste from the generated bank)"
$PY tools/train.py $CONFIG --work-dir $WORK/train --cfg-options \
  train_cfg.max_iters=$ITERS default_hooks.checkpoint.interval=$ITERS \
  val_cfg=None val_dataloader=None val_evaluator=None  # evaluated once, in step 5

step "5/5 LVIS evaluation of the last checkpoint (AP, APr, APc, APf; box and mask)"
$PY tools/test.py $CONFIG $WORK/train/iter_$ITERS.pth --work-dir $WORK/test
