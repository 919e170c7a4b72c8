# Toy ablation, number of pastes: 0..4 per image (X-Paste row: 0..7).
# Otherwise the toy X-Paste row (tests/test_configs_xpaste.py checks that only this differs).
_base_ = '../../toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

# ---- frequently modified parameters ----
num_pastes = (0, 5)

xpaste = _base_.xpaste
xpaste.num_pastes = num_pastes
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
