# X-Paste on the toy LVIS world: the baseline plus the paste step (nothing else differs),
# pasting from the bank that `tools/bank/build.py configs/bank/toy_gap.py` builds (a generator
# with a domain gap -> segmenter -> toy CLIP scores -> filters -> bank; `make demo` and
# tools/experiments/toy_experiment.py build it).
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
    # occlusion filter: an instance is kept if its box moved by <= 10 px or > 20 px of its mask
    # remain. The paper's values, 10 px and 300 px, are for its 640x640 training crops (R50;
    # Swin-L: 896x896); the toy images are 256 px, where 300 px scaled by area is 48 px. 20 px
    # is 300 px scaled from 1024 px (mmdet's copy-paste setting) and is what the toy results in
    # README.md were measured with.
    box_occluded_thr=10,
    mask_occluded_thr=20)
paste_steps = [xpaste]  # after RandomFlip, before PackDetInputs
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
