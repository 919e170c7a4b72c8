# Ablation, blending: the cut-out's own alpha channel, unfeathered (X-Paste: Gaussian-feathered).
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
paste_blend = 'alpha'

xpaste = _base_.xpaste
xpaste.blend = paste_blend
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
