# X-Paste with generated and retrieved instances on LVIS v1: two paste steps, one per bank, each
# drawing half of X-Paste's pastes (0..9 each instead of 0..19 from one bank), so an image gets
# about as many pastes as in the single-bank rows. The second step occludes the first's pastes
# like any earlier instance.
_base_ = './mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-xpaste-2x_lvis-v1.py'

# ---- frequently modified parameters ----
bank_root_generated = 'data/banks/lvis_sd15'
bank_root_retrieved = 'data/banks/lvis_retrieved'
num_pastes = (0, 10)  # per step

xpaste = _base_.xpaste
xpaste.num_pastes = num_pastes
xpaste.bank.root = bank_root_generated
xpaste_retrieved = dict(xpaste, bank=dict(xpaste.bank, root=bank_root_retrieved))
paste_steps = [xpaste, xpaste_retrieved]  # generated, then retrieved
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
