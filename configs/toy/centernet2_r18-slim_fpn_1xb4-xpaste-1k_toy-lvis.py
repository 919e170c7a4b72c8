# X-Paste on the toy LVIS world with CenterNet2: the CenterNet2 toy baseline plus the paste
# step of the toy Mask R-CNN X-Paste config (mask-rcnn_r18-slim_fpn_1xb4-xpaste-1k_toy-lvis.py,
# same bank and settings), nothing else.
_base_ = './centernet2_r18-slim_fpn_1xb4-1k_toy-lvis.py'

# ---- frequently modified parameters ----
bank_root = 'data/banks/toy_generated'
num_pastes = (0, 8)

xpaste = dict(
    type='XPaste',
    bank=dict(type='InstanceBank', root=bank_root, sampling='class_balanced'),
    classes='data/toy_lvis/annotations/lvis_v1_train.json',
    num_pastes=num_pastes,
    size_mode='class_stats',
    blend='gaussian',
    box_occluded_thr=10,
    mask_occluded_thr=20)  # the toy Mask R-CNN config explains the toy thresholds
paste_steps = [xpaste]  # after RandomFlip, before PackDetInputs
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
