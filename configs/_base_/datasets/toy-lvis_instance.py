# The toy LVIS world (tools/data/make_toy_lvis.py): LVIS v1 format, class names from the json,
# class-balanced repeat-factor sampling as mmdet's LVIS configs use.
dataset_type = 'LVISV1JsonDataset'
data_root = 'data/toy_lvis/'
backend_args = None
# Repeat-factor sampling threshold. LVIS uses 1e-3 with ~100k images (a rare class, <= 10 images,
# gets r = sqrt(1e-3 / 1e-4) ~ 3.2). The toy world has ~300 training images, so the same repeat
# factors need a threshold scaled accordingly: 0.1 gives a 1-image class r ~ 5.5, a 10-image class
# r ~ 1.7.
oversample_thr = 0.1
img_scale = (256, 256)

# The training pipeline in three named parts. A paste config sets `paste_steps` and rebuilds
# `train_pipeline` and the dataloader from the parts (mmengine resolves each file once, so a
# changed variable must be re-applied where it is used), e.g.
#   paste_steps = [xpaste]
#   train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
#   train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
pre_paste = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
]
paste_steps = []  # the paste step(s): after RandomFlip, before PackDetInputs; none here
post_paste = [dict(type='PackDetInputs')]
train_pipeline = [*pre_paste, *paste_steps, *post_paste]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='ClassBalancedDataset',
        oversample_thr=oversample_thr,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/lvis_v1_train.json',
            data_prefix=dict(img=''),
            filter_cfg=dict(filter_empty_gt=True, min_size=4),
            pipeline=train_pipeline,
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='LVISMetric',
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'],
    backend_args=backend_args)
test_evaluator = val_evaluator
