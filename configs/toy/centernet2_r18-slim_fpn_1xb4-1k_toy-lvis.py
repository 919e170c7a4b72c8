# CenterNet2 baseline on the toy LVIS world: the slim CenterNet2 R18-FPN from scratch with the
# data, repeat-factor sampling and schedule of the toy Mask R-CNN baseline
# (mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py), so the two detectors compare on equal terms.
#   python tools/train.py configs/toy/centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py
#   python tools/experiments/toy_experiment.py --detector centernet2
_base_ = [
    '../_base_/models/centernet2_r18-slim_fpn_toy.py',
    '../_base_/datasets/toy-lvis_instance.py',
    '../_base_/schedules/schedule_toy.py',
    '../_base_/default_runtime.py',
]
custom_imports = dict(imports=['xpaste.datasets', 'xpaste.models'], allow_failed_imports=False)
