"""``--cfg-options`` that make a toy config train a few iterations on the tiny toy world."""


def tiny_run_options(root, num_classes, max_iters, bbox_heads=('model.roi_head.bbox_head', )):
    """Data roots and evaluator files of ``root``, ``num_classes`` in the mask head and in every
    box head named by ``bbox_heads``, ``max_iters`` iterations evaluated once at the end, no
    dataloader workers, a checkpoint every 2 iterations, seed 0."""
    return [
        f'train_dataloader.dataset.dataset.data_root={root}/',
        f'val_dataloader.dataset.data_root={root}/',
        f'test_dataloader.dataset.data_root={root}/',
        f'val_evaluator.ann_file={root}/annotations/lvis_v1_val.json',
        f'test_evaluator.ann_file={root}/annotations/lvis_v1_val.json',
        *(f'{head}.num_classes={num_classes}' for head in bbox_heads),
        f'model.roi_head.mask_head.num_classes={num_classes}',
        f'train_cfg.max_iters={max_iters}', f'train_cfg.val_interval={max_iters}',
        'param_scheduler.0.end=2', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
        'randomness.seed=0',
    ]
