# Baseline on the toy LVIS world: slim Mask R-CNN R18-FPN from scratch, repeat-factor sampling,
# 1k iterations at batch 4 on a CPU. The X-Paste variants differ from it only by the paste step.
_base_ = [
    '../_base_/models/mask-rcnn_r18-slim_fpn_toy.py',
    '../_base_/datasets/toy-lvis_instance.py',
    '../_base_/schedules/schedule_toy.py',
    '../_base_/default_runtime.py',
]
