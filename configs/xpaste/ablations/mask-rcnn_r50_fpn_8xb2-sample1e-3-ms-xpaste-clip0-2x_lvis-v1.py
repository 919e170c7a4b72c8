# Ablation, CLIP filter: the generated bank filtered with min_clip=0 (X-Paste's bank: 21,
# the paper's value; a cut-out is kept if its CLIP score >= min(min_clip, best score of its
# class - 1)). Built from the same images and masks as data/banks/lvis_sd15:
#   python tools/bank/build.py configs/bank/lvis_sd15.py --stage filter write \
#       --bank-dir data/banks/lvis_sd15_clip0 --cfg-options filter.min_clip=0
_base_ = '../lvis/mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_sd15_clip0'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
