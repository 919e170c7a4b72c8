# COCO 2017 instance bank as in X-Paste: the LVIS recipe of lvis_sd15.py (Stable Diffusion 1.5,
# "a photo of a single {name}", 50 DPM-Solver++ steps, CFG 7.5 -> segmenter -> CLIP filter)
# for the 80 COCO classes, read from the COCO training json; the per-class size statistics
# come from the same json.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/coco_sd15.py \
#       --bank-dir data/banks/coco_sd15
_base_ = ['./lvis_sd15.py']

categories = dict(ann_file='data/coco/annotations/instances_train2017.json')
