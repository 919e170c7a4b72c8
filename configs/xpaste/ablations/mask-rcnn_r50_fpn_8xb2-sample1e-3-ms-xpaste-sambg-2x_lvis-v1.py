# Ablation, segmenter: SAM prompted with background points on the image corners, the object
# being the complement (configs/bank/lvis_sd15_sam-bg.py, DiverGen's SAM-background); compare
# with SAM's box prompt (the sam ablation) and X-Paste's classical segmenter.
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_sd15_sam-bg.py \
#       --work-dir work_dirs/lvis_sd15 --bank-dir data/banks/lvis_sd15_sam-bg
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_sd15_sam-bg'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
