# Baseline of the long R50 table (X-Paste's configs/Xpaste_R50.yaml without its paste): the
# 90k baseline trained 180k iterations at lr 1e-4 with an exponential moving average (0.999) of
# the weights, which is what is saved and evaluated.
_base_ = './centernet2_r50-in21k_fpn_8xb8-sample1e-3-lsj640-90k_lvis-v1.py'

max_iters = _base_.long_max_iters
base_lr = _base_.long_base_lr
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=_base_.warmup_factor, by_epoch=False, begin=0,
         end=_base_.warmup_iters),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=base_lr))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=1 - _base_.ema_decay,
         update_buffers=True, priority=49)
]
default_hooks = dict(checkpoint=dict(interval=30000))  # Xpaste_R50.yaml CHECKPOINT_PERIOD
