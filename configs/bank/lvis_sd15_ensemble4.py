# Four segmenters on every image, as X-Paste's ensemble (its paper runs four foreground
# segmenters and keeps, per image, the cut-out with the best CLIP score): the three of
# lvis_sd15_ensemble.py (classical, SAM with a box prompt, CLIPSeg) and an MMDetection model:
# mmdet's LVIS v1 Mask R-CNN R50-FPN (1x), keeping per image the best detection of the image's
# class (bank names matched to the detector's classes), else of any class. SAM, CLIPSeg and
# Mask R-CNN run batched on the GPU, the classical segmenter in the CPU workers. Mask R-CNN
# weights from mmdet's model zoo (configs/lvis/metafile.yml):
#   https://download.openmmlab.com/mmdetection/v2.0/lvis/mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1/mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1-aa78ac3d.pth
# Built from the images of lvis_sd15.py:
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_ensemble4.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_ensemble4
_base_ = ['./lvis_sd15_ensemble.py']

# (a name starting with "_" is a config variable, not a build option)
_mmdet_segmenter = dict(
    type='MMDetSegmenter',
    config='mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py',
    checkpoint='checkpoints/mask_rcnn_r50_fpn_sample1e-3_mstrain_1x_lvis_v1-aa78ac3d.pth',
    target_class=True,
    fallback_any_class=True,
    score_thr=0.3,
    batch_size=8)
segment = dict(
    _delete_=True,
    segmenters=[*_base_.segment.segmenters, _mmdet_segmenter],
    largest_component=True)
