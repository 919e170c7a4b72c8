# Copy-paste from the training set on the toy LVIS world: the same paste step as X-Paste, pasting
# the training set's own instances (tools/bank/from_annotations.py) instead of generated ones.
_base_ = './mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

bank_root = 'data/banks/toy_train_instances'
bank = _base_.bank
bank.root = bank_root
xpaste = _base_.xpaste
xpaste.bank = bank
paste_steps = [xpaste]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
