# Copy-paste from the training set on LVIS v1: the X-Paste step on a bank of LVIS's own training
# instances, so this row and the X-Paste rows differ only by where the pasted instances come from.
#   python tools/bank/from_annotations.py data/lvis_v1/annotations/lvis_v1_train.json \
#       data/lvis_v1 data/banks/lvis_train_instances
_base_ = './mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_train_instances'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
