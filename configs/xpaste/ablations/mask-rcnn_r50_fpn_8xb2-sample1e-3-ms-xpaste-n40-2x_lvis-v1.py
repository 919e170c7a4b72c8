# Ablation, number of pastes: 0..39 pastes per image (X-Paste: 0..19).
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
num_pastes = (0, 40)

xpaste = _base_.xpaste
xpaste.num_pastes = num_pastes
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
