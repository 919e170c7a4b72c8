# The training recipe of X-Paste's CenterNet2 rows on LVIS v1 (data, sampling, optimiser,
# schedule, evaluation), every value with its source; the model is
# configs/_base_/models/centernet2_r50-in21k_fpn.py. Sources:
#   [XP]  yoctta/XPaste configs/Base-C2_L_R5021k_640b64_4x.yaml (the baseline; = Detic's)
#   [XPL] yoctta/XPaste configs/Xpaste_R50.yaml, Xpaste_copypaste_R50.yaml (the long setting)
#   [XPS] yoctta/XPaste configs/Xpaste_swinL.yaml, Xpaste_copypaste_swinL.yaml (Swin-L)
#   [XPC] yoctta/XPaste xpaste/data/custom_build_copypaste_mapper.py (InstPool, the paste)
#   [D2]  detectron2's defaults
# Rows are this file plus their paste steps: the training set goes through
# MultiImageMixDataset(dataset=LVIS with `load_pipeline`, pipeline=`train_pipeline`), and
# `train_pipeline` is RandomFlip + `paste_steps` + PackDetInputs. A row sets `paste_steps` and
# re-applies `train_pipeline` (tests/test_configs_xpaste.py checks that nothing else differs).
_base_ = [
    '../../../_base_/models/centernet2_r50-in21k_fpn.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(
    imports=['xpaste.datasets', 'xpaste.datasets.repeat_factor', 'xpaste.datasets.copy_paste',
             'xpaste.models'],
    allow_failed_imports=False)

# ---- frequently modified parameters ----
data_root = 'data/lvis_v1/'  # annotations/ and COCO's train2017/ val2017/
image_size = (640, 640)  # [XP] INPUT.TRAIN_SIZE 640 (Swin-L: 896 [XPS])
test_size = (640, 640)  # [D2/XP] INPUT.TEST_SIZE 640 (also for Swin-L: its configs keep it)
scale_range = (0.1, 2.0)  # [XP] CUSTOM_AUG EfficientDetResizeCrop, SCALE_RANGE (0.1, 2.0)
repeat_thr = 1e-3  # [XP] DATALOADER.REPEAT_THRESHOLD (RepeatFactorTrainingSampler)
batch_size = 8  # images per GPU: [XP] IMS_PER_BATCH 64 on 8 GPUs
num_workers = 8  # [XP] DATALOADER.NUM_WORKERS
base_lr = 2e-4  # [XP] BASE_LR (AdamW)
weight_decay = 1e-4  # [D2] SOLVER.WEIGHT_DECAY (AdamW, every parameter)
max_iters = 90000  # [XP] MAX_ITER
warmup_iters = 10000  # [XP] WARMUP_ITERS, WARMUP_FACTOR 1e-4, linear
warmup_factor = 1e-4
# the long setting [XPL]: 180k iterations, lr 1e-4, EMA 0.999 of the weights
long_max_iters = 180000
long_base_lr = 1e-4
ema_decay = 0.999  # [XPL] SOLVER.MODEL_EMA (mmengine momentum = 1 - decay)
# Swin-L [XPS]: 896 px, 16 images per iteration (8 GPUs x 2), lr 1e-4, 180k + EMA
swin_image_size = (896, 896)
swin_batch_size = 2

backend_args = None
dataset_type = 'LVISV1Dataset'

# large-scale jitter: resize to fit image_size x U(0.1, 2.0), random crop to image_size
load_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=scale_range, keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
]
pre_paste = [dict(type='RandomFlip', prob=0.5)]
paste_steps = []  # the baseline pastes nothing
post_paste = [dict(type='PackDetInputs')]
train_pipeline = [*pre_paste, *paste_steps, *post_paste]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=test_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    # [XP] RepeatFactorTrainingSampler: floor(r) + Bernoulli(frac(r)) copies per epoch
    sampler=dict(type='RepeatFactorSampler', repeat_thr=repeat_thr),
    batch_sampler=None,
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='annotations/lvis_v1_train.json',
            data_prefix=dict(img=''),
            # [D2] DATALOADER.FILTER_EMPTY_ANNOTATIONS
            filter_cfg=dict(filter_empty_gt=True, min_size=0),
            pipeline=load_pipeline,
            backend_args=backend_args),
        pipeline=train_pipeline))
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

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# [XP] WarmupCosineLR: linear warm-up from 1e-4 x lr over 10k iterations, times a cosine from
# lr to 0 over all iterations (both schedulers act from iteration 0 and multiply)
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_factor, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters),
]
optim_wrapper = dict(
    type='AmpOptimWrapper',  # [XP] FP16
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=weight_decay),
    # [XP] CLIP_GRADIENTS.ENABLED with [D2] CLIP_TYPE value, CLIP_VALUE 1.0
    clip_grad=dict(type='value', clip_value=1.0))
# lr is set for 64 images per iteration; `tools/train.py --auto-scale-lr` rescales it
auto_scale_lr = dict(enable=False, base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # XPaste configs/baseline/*: CHECKPOINT_PERIOD 10000
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=10000, max_keep_ckpts=3))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

# Swin-L backbone [XPS] (SWIN.SIZE L-22k-384 of XPaste's swintransformer.py: window 12, embed
# 192, depths 2-2-18-2, heads 6-12-24-48, drop path 0.3; FPN.IN_FEATURES swin1-swin3)
swin_pretrained = 'checkpoints/swin_large_patch4_window12_384_22k.pth'
swin_pretrained_hint = (
    'Download the ImageNet-22k Swin-L (384 px) of Microsoft: wget https://github.com/'
    'SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth '
    '-P checkpoints/')
swin_backbone = dict(
    type='SwinTransformer',
    pretrain_img_size=384,
    embed_dims=192,
    depths=[2, 2, 18, 2],
    num_heads=[6, 12, 24, 48],
    window_size=12,
    mlp_ratio=4,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.3,
    patch_norm=True,
    out_indices=(1, 2, 3),
    with_cp=False,
    convert_weights=True,
    init_cfg=dict(type='Pretrained', checkpoint=swin_pretrained))
swin_channels = [384, 768, 1536]
