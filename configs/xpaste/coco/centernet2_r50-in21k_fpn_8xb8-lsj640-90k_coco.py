# Baseline of the COCO table, CenterNet2 family: X-Paste's CenterNet2 R50 recipe (large-scale
# jitter 640, AdamW, cosine, 90k iterations at 64 images) on COCO 2017. No paste step.
_base_ = './_base_/recipe-centernet2_coco.py'
