# X-Paste (generated instances, R50, 180k + EMA): the baseline plus the X-Paste step and nothing
# else. Bank: Stable Diffusion 1.5 -> segmenter -> CLIP filter
#   python tools/bank/build.py configs/bank/lvis_sd15.py --bank-dir data/banks/lvis_sd15
_base_ = [
    './centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-180k_lvis-v1.py',
    './_base_/xpaste_lsj.py',
]

paste_steps = [_base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
