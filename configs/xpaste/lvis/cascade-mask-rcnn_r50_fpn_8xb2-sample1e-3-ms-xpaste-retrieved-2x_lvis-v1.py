# X-Paste with retrieved images on LVIS v1: the X-Paste step on a bank built from a folder of
# retrieved (web) images per class instead of generated ones.
#   python tools/bank/build.py configs/bank/lvis_folder.py \
#       --bank-dir data/banks/lvis_retrieved
_base_ = './cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_retrieved'

xpaste = _base_.xpaste
xpaste.bank.root = bank_root
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
