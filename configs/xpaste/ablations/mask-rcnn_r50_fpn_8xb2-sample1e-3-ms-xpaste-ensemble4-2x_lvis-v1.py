# Ablation, segmenter: four segmenters per image (classical, SAM, CLIPSeg, MMDetection Mask
# R-CNN), the best CLIP cut-out kept, as X-Paste's four-segmenter ensemble
# (configs/bank/lvis_sd15_ensemble4.py); the ensemble ablation has three.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_ensemble4.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_ensemble4
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_sd15_ensemble4'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
