# X-Paste + copy-paste on COCO with Mask R-CNN: two paste steps, generated instances
# (data/banks/coco_sd15) then COCO's own training instances (data/banks/coco_train_instances),
# each drawing half of X-Paste's pastes (0..9), as the LVIS rows of this family paste from the
# training set:
#   python tools/bank/from_annotations.py data/coco/annotations/instances_train2017.json \
#       data/coco/train2017 data/banks/coco_train_instances
_base_ = './mask-rcnn_r50_fpn_8xb2-ms-xpaste-2x_coco.py'

# ---- frequently modified parameters ----
bank_root_generated = 'data/banks/coco_sd15'
bank_root_train = 'data/banks/coco_train_instances'
num_pastes = (0, 10)  # per step

xpaste = dict(_base_.xpaste, num_pastes=num_pastes,
              bank=dict(_base_.xpaste.bank, root=bank_root_generated))
xpaste_train = dict(xpaste, bank=dict(xpaste['bank'], root=bank_root_train))
paste_steps = [xpaste, xpaste_train]
train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
