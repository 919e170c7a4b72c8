# Ablation, sampling: every bank instance equally likely (X-Paste: a class uniformly, then an
# instance of it), so classes with more kept instances are pasted more often.
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
paste_sampling = 'uniform'

xpaste = _base_.xpaste
xpaste.bank.sampling = paste_sampling
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
