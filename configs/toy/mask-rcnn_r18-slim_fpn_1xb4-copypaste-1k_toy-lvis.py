# Copy-paste from the training set on the toy LVIS world: the same paste step as X-Paste, pasting
# the training set's own instances (tools/bank/from_annotations.py) instead of generated ones.
_base_ = './mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py'

bank_root = 'data/banks/toy_train_instances'
bank = _base_.bank
bank.root = bank_root
xpaste = _base_.xpaste
xpaste.bank = bank
train_pipeline = _base_.train_pipeline
train_pipeline[-2] = xpaste  # the XPaste step, just before PackDetInputs
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
