# Baseline of the LVIS v1 table: Mask R-CNN R50-FPN, repeat-factor sampling 1e-3, multi-scale
# training, 2x schedule, 8 GPUs x 2 images, AMP. No paste step: each paste row is this config
# plus its paste step(s) and nothing else (tests/test_configs_xpaste.py checks it).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/lvis-v1_8xb2-sample1e-3-ms-2x.py',
]

# ---- frequently modified parameters ----
num_classes = 1203  # LVIS v1

model = dict(
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)),
    # LVIS evaluation keeps up to 300 detections per image
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
