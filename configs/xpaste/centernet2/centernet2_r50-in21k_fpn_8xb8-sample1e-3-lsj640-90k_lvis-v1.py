# Baseline of the CenterNet2 R50 table (X-Paste's configs/Base-C2_L_R5021k_640b64_4x.yaml):
# CenterNet2 + federated loss, ResNet-50 (ImageNet-21k), large-scale jitter 640, AdamW 2e-4,
# cosine, 90k iterations at 64 images, repeat-factor sampling 1e-3. No paste step.
#   bash tools/dist_train.sh \
#       configs/xpaste/centernet2/centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-90k_lvis-v1.py 8
_base_ = './_base_/recipe_lvis-v1.py'
