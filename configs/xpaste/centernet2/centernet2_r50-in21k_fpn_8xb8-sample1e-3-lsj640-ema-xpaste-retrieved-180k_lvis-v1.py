# X-Paste with retrieved (web) images instead of generated ones (R50, 180k + EMA): the same
# step on a bank built from a folder of images per class
#   python tools/bank/build.py configs/bank/lvis_folder.py --bank-dir data/banks/lvis_retrieved
_base_ = './centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-ema-xpaste-180k_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/lvis_retrieved'

xpaste = dict(_base_.xpaste, bank=dict(_base_.xpaste.bank, root=bank_root))
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
