# Toy ablation, CLIP threshold 50 (X-Paste row: 65): the bank of configs/bank/toy_gap_clip50.py.
# Otherwise the toy X-Paste row (tests/test_configs_xpaste.py checks that only this differs).
_base_ = '../../toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/toy_generated_clip50'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
