# Baseline of the stronger detector: Cascade Mask R-CNN R50-FPN (three box stages), with the same
# data, sampling, schedule and AMP as the Mask R-CNN rows. No paste step.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/lvis-v1_8xb2-sample1e-3-ms-2x.py',
]

# ---- frequently modified parameters ----
num_classes = 1203  # LVIS v1

model = dict(
    roi_head=dict(
        # the three cascade stages, each with LVIS's class count
        bbox_head=[dict(head, num_classes=num_classes) for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=num_classes)),
    # LVIS evaluation keeps up to 300 detections per image
    test_cfg=dict(rcnn=dict(score_thr=0.0001, max_per_img=300)))
