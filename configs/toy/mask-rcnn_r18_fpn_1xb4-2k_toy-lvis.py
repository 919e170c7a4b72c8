# Baseline on the toy LVIS world: Mask R-CNN R18-FPN from scratch, repeat-factor sampling,
# 2k iterations at batch 4 on a CPU. X-Paste variants differ from it only by the paste step.
_base_ = [
    '../_base_/models/mask-rcnn_r18_fpn_toy.py',
    '../_base_/datasets/toy-lvis_instance.py',
    '../_base_/schedules/schedule_toy.py',
    '../_base_/default_runtime.py',
]
