# Data, schedule and runtime of the Mask R-CNN rows on COCO 2017, as the LVIS rows
# (../../_base_/lvis-v1_8xb2-sample1e-3-ms-2x.py): multi-scale training (shorter side
# 640-800), 2x schedule, 8 GPUs x 2 images, AMP, COCO box and mask AP. The training pipeline
# is `pre_paste` + `paste_steps` + `post_paste`; a row sets `paste_steps` and re-applies it.
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['xpaste.datasets'], allow_failed_imports=False)

# ---- frequently modified parameters ----
data_root = 'data/coco/'  # annotations/instances_{train,val}2017.json, train2017/, val2017/
batch_size = 2  # images per GPU; lr 0.02 is for 8 GPUs x 2 (see auto_scale_lr)

backend_args = None
pre_paste = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                 (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
]
paste_steps = []  # the baseline pastes nothing
post_paste = [dict(type='PackDetInputs')]
train_pipeline = [*pre_paste, *paste_steps, *post_paste]

train_dataloader = dict(
    batch_size=batch_size, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
auto_scale_lr = dict(enable=False, base_batch_size=16)
