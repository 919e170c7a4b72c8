# X-Paste on COCO with CenterNet2: the baseline plus the X-Paste step (COCO bank) only.
_base_ = ['./centernet2_r50-in21k_fpn_8xb8-lsj640-90k_coco.py', './_base_/xpaste_coco.py']

paste_steps = [_base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
