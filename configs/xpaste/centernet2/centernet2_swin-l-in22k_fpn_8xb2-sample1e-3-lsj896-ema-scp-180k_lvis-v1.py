# Copy-Paste (Swin-L): objects of another, uniformly drawn training image (itself
# jittered and cropped) pasted onto the image, as X-Paste's code does (simple copy-paste,
# Ghiasi et al. 2021: a random subset of its objects, occlusion filter 10 px / 300 px); the
# canvas grows to the pasted objects' extent (CopyPasteAnySize). Otherwise the baseline.
_base_ = [
    './centernet2_swin-l-in22k_fpn_8xb2-sample1e-3-lsj896-ema-180k_lvis-v1.py',
    '../_base_/simple-copy-paste.py',
]

paste_steps = [_base_.copypaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
