# X-Paste on COCO with Mask R-CNN: the baseline plus the X-Paste step (COCO bank of
# configs/bank/coco_sd15.py) and nothing else.
_base_ = ['./mask-rcnn_r50_fpn_8xb2-ms-2x_coco.py', './_base_/xpaste_coco.py']

paste_steps = [_base_.xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
