# Data, schedule and runtime shared by every LVIS v1 row (both detectors, all paste variants):
# LVIS v1 (mmdet's LVISV1Dataset), repeat-factor sampling, multi-scale training (shorter side
# 640-800, mmdet's LVIS pipeline), 2x schedule (24 epochs, LR steps at 16 and 22, evaluated after
# the last epoch), 8 GPUs x 2 images, AMP. A detector config adds its model and its num_classes.
_base_ = [
    'mmdet::_base_/datasets/lvis_v1_instance.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['xpaste.datasets'], allow_failed_imports=False)

# ---- frequently modified parameters ----
data_root = 'data/lvis_v1/'  # holds annotations/ and COCO's train2017/ and val2017/
oversample_thr = 1e-3  # repeat-factor sampling (ClassBalancedDataset)
batch_size = 2  # images per GPU; lr 0.02 is for 8 GPUs x 2 (see auto_scale_lr)
# A full LVIS v1 evaluation (19.8k val images, up to 300 detections each) runs every
# `val_interval` epochs and after the last one; the default, the schedule's length (24), evaluates
# once, at the end. E.g. `--cfg-options train_cfg.val_interval=4` adds evaluations at 4, 8, ...
val_interval = _base_.train_cfg.max_epochs

# mmdet's LVIS training pipeline (LoadImageFromFile, LoadAnnotations, RandomChoiceResize to a
# shorter side of 640-800, RandomFlip, PackDetInputs) in three named parts. A paste config sets
# `paste_steps` and rebuilds `train_pipeline` and the dataloader from the parts (mmengine resolves
# each file once, so a changed variable must be re-applied where it is used):
#   paste_steps = [xpaste]
#   train_pipeline = [*_base_.pre_paste, *paste_steps, *_base_.post_paste]
#   train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
pre_paste = [step for step in _base_.train_pipeline if step.type != 'PackDetInputs']
paste_steps = []  # the paste step(s): after RandomFlip, before PackDetInputs; none here
post_paste = [step for step in _base_.train_pipeline if step.type == 'PackDetInputs']
train_pipeline = [*pre_paste, *paste_steps, *post_paste]

train_cfg = dict(val_interval=val_interval)
train_dataloader = dict(
    batch_size=batch_size,
    dataset=dict(
        oversample_thr=oversample_thr,
        dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/lvis_v1_val.json')
test_evaluator = val_evaluator

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
# `tools/train.py --auto-scale-lr` rescales lr 0.02 from 16 images per iteration to the actual
# GPUs x batch_size
auto_scale_lr = dict(enable=False, base_batch_size=16)
