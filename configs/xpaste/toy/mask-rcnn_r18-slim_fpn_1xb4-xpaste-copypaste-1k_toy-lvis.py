# X-Paste + copy-paste on the toy LVIS world: two paste steps, the generated bank
# (data/banks/toy_generated) then the training set's own instances
# (data/banks/toy_train_instances), each drawing half of X-Paste's pastes (0..3 each instead of
# 0..7 from one bank), so an image gets about as many pastes as in the single-bank variants.
# Otherwise identical to the toy baseline (tests/test_configs_xpaste.py checks it).
_base_ = '../../toy/mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_root_generated = 'data/banks/toy_generated'
bank_root_train = 'data/banks/toy_train_instances'
num_pastes = (0, 4)  # per step

xpaste = _base_.xpaste
xpaste.num_pastes = num_pastes
xpaste.bank.root = bank_root_generated
xpaste_train = dict(xpaste, bank=dict(xpaste.bank, root=bank_root_train))
paste_steps = [xpaste, xpaste_train]  # generated, then the training set's
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
