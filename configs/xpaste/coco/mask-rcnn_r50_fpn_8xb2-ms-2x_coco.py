# Baseline of the COCO table, Mask R-CNN family: Mask R-CNN R50-FPN, multi-scale training,
# 2x schedule, 8 GPUs x 2 images, AMP. No paste step: each paste row is this config plus its
# paste step(s) and nothing else (tests/test_configs_xpaste.py checks it).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/coco_8xb2-ms-2x.py',
]
