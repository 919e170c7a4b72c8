# Baseline of the Swin-L table (X-Paste's configs/Xpaste_swinL.yaml without its paste):
# the long R50 baseline with a Swin-L backbone (ImageNet-22k, 384 px) at 896 px, 16 images
# per iteration (8 GPUs x 2), lr 1e-4, 180k iterations + EMA 0.999; tested at 640 as the
# official config does.
_base_ = './centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-180k_lvis-v1.py'

image_size = _base_.swin_image_size
model = dict(
    pretrained_hint=_base_.swin_pretrained_hint,
    backbone=dict(_delete_=True, **_base_.swin_backbone),
    neck=dict(in_channels=_base_.swin_channels))
load_pipeline = [
    dict(step, scale=image_size) if step['type'] == 'RandomResize' else
    dict(step, crop_size=image_size) if step['type'] == 'RandomCrop' else step
    for step in _base_.load_pipeline
]
train_dataloader = dict(batch_size=_base_.swin_batch_size,
                        dataset=dict(dataset=dict(pipeline=load_pipeline)))
auto_scale_lr = dict(base_batch_size=16)
