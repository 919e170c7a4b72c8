# Ablation, filter: cut-outs also filtered by CLIP similarity to the class's real LVIS training
# instances (configs/bank/lvis_sd15_real.py, DiverGen's instance filtration); X-Paste filters
# by the CLIP text score only.
#   python tools/bank/build.py configs/bank/lvis_sd15_real.py --work-dir work_dirs/lvis_sd15 \
#       --bank-dir data/banks/lvis_sd15_real
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_sd15_real'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
