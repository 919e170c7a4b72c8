# Toy ablation, bank sampling: every instance equally likely (X-Paste row: class-balanced, every
# class equally likely, then an instance of it).
# Otherwise the toy X-Paste row (tests/test_configs_xpaste.py checks that only this differs).
_base_ = '../../toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_sampling = 'uniform'

xpaste = _base_.xpaste
xpaste.bank.sampling = bank_sampling
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
