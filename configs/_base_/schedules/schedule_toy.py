# Iteration-based schedule for the toy world on a CPU: SGD, linear warm-up, two LR steps.
max_iters = 1000
val_interval = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[int(max_iters * 0.75), int(max_iters * 0.9)], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001),
    # mmdet's Mask R-CNN clips at 35; the toy model trains from scratch, and right after the
    # warm-up some seeds spiked to gradient norms of 20-90 (typical: 2-7) and never recovered
    # (box AP 3 instead of 29 at 250 iterations), so spikes are clipped harder here.
    clip_grad=dict(max_norm=10, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=4)
