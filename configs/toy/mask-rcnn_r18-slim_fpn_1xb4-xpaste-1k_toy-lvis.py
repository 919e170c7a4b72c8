# X-Paste on the toy LVIS world: the baseline plus the paste step (nothing else differs),
# pasting from the bank that `tools/bank/build.py configs/bank/toy.py` builds
# (toy renderer -> segmenter -> filters -> bank).
_base_ = './mask-rcnn_r18-slim_fpn_1xb4-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/toy_generated'
num_pastes = (0, 8)

bank = dict(type='InstanceBank', root=bank_root, sampling='class_balanced')
xpaste = dict(
    type='XPaste',
    bank=bank,
    # class names in label order: the toy json's categories (LVISV1JsonDataset's labels)
    classes='data/toy_lvis/annotations/lvis_v1_train.json',
    num_pastes=num_pastes,
    size_mode='class_stats',
    blend='gaussian',
    # the paper's thresholds (10 px box move, 300 px mask) are for ~1024 px images; the toy
    # images are 256 px, so the mask threshold scales by (256/1024)^2
    box_occluded_thr=10,
    mask_occluded_thr=20)
train_pipeline = _base_.train_pipeline
train_pipeline.insert(-1, xpaste)  # after RandomFlip, before PackDetInputs
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
