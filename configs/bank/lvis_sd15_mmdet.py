# Segmenter ablation: the MMDetection Mask R-CNN of lvis_sd15_ensemble4.py alone (mmdet's LVIS
# v1 Mask R-CNN R50-FPN; per image the best detection of the image's class, else of any
# class) instead of the classical segmenter of lvis_sd15.py. Built from its images:
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_mmdet.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_mmdet
_base_ = ['./lvis_sd15_ensemble4.py']

segment = dict(_delete_=True, segmenters=[_base_._mmdet_segmenter], largest_component=True)
