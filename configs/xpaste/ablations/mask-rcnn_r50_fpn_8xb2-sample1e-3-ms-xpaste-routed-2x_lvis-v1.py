# Ablation, image sources: per-class routing (configs/bank/lvis_routed.py): Stable Diffusion 1.5
# images for the rare classes, retrieved images for the common and frequent ones; X-Paste's
# bank generates every class (configs/bank/lvis_sd15.py).
#   torchrun --nproc_per_node 8 tools/bank/build.py configs/bank/lvis_routed.py \
#       --bank-dir data/banks/lvis_routed
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_routed'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
