# X-Paste + Copy-Paste (R50, 180k + EMA; X-Paste's USE_COPY_METHOD "both"): Copy-Paste from
# another training image, then the X-Paste step. X-Paste's code pastes in the other order.
_base_ = [
    './centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-scp-180k_lvis-v1.py',
    './_base_/xpaste_lsj.py',
]

paste_steps = [_base_.copypaste, _base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
