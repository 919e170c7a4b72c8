# Ablation, photometric matching: with probability 0.5 each pasted instance's luminance mean and
# std move towards those of the image window it covers, by a strength drawn in [0, 1]
# (XPaste's photometric_match; X-Paste pastes instances as they are).
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
paste_photometric_match = dict(strength=(0.0, 1.0), prob=0.5)

xpaste = _base_.xpaste
xpaste.photometric_match = paste_photometric_match
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
