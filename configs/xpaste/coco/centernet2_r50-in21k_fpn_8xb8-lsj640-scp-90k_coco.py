# Copy-Paste on COCO with CenterNet2: objects of another, uniformly drawn training image (as
# in the LVIS rows of ../centernet2/); otherwise the baseline.
_base_ = [
    './centernet2_r50-in21k_fpn_8xb8-lsj640-90k_coco.py',
    '../_base_/simple-copy-paste.py',
]

paste_steps = [_base_.copypaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
