# X-Paste + Copy-Paste ("both") on COCO with CenterNet2: Copy-Paste, then X-Paste.
_base_ = ['./centernet2_r50-in21k_fpn_8xb8-lsj640-scp-90k_coco.py', './_base_/xpaste_coco.py']

paste_steps = [_base_.copypaste, _base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
