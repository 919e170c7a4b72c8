# X-Paste + Copy-Paste on LVIS v1 (the paper's "both", X-Paste's USE_COPY_METHOD "both"):
# Copy-Paste from another training image, then the X-Paste step of the other LVIS rows
# (../_base_/xpaste_lvis-v1.py), unchanged. X-Paste's code pastes in the other order.
_base_ = [
    './cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-scp-2x_lvis-v1.py',
    '../_base_/xpaste_lvis-v1.py',
]

paste_steps = [_base_.copypaste, _base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
