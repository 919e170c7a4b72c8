# Toy ablation, no bank filter: the bank of configs/bank/toy_gap_nofilter.py (the same images,
# masks and scores; no CLIP, area, component or near-duplicate filter).
# Otherwise the toy X-Paste row (tests/test_configs_xpaste.py checks that only this differs).
_base_ = '../../toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/toy_generated_nofilter'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
