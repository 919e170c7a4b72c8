# Copy-Paste on LVIS v1 (the paper's Copy-Paste row): objects of another training image pasted
# onto the image, as X-Paste's code does (simple copy-paste, Ghiasi et al. 2021: a random subset
# of its objects, occlusion filter 10 px / 300 px; the canvas grows to the pasted objects' extent,
# CopyPasteAnySize), with the settings of the CenterNet2 rows (../centernet2/*-scp-*). Otherwise
# the baseline. Copy-paste needs a second image, so the training set is wrapped in a
# MultiImageMixDataset: its dataset is the baseline's ClassBalancedDataset (repeat-factor
# sampling kept) with the loading part of the pipeline (up to RandomChoiceResize), its pipeline is
# RandomFlip + the paste step(s) + PackDetInputs. The source image is drawn uniformly from the
# repeat-factor-resampled index set (ClassBalancedDataset needs the category ids of the dataset it
# wraps, which MultiImageMixDataset does not give, so the mix wrapper is the outer one).
_base_ = [
    './cascade-mask-rcnn_r50_fpn_8xb2-sample1e-3-ms-2x_lvis-v1.py',
    '../_base_/simple-copy-paste.py',
]
custom_imports = dict(imports=['xpaste.datasets', 'xpaste.datasets.copy_paste'],
                      allow_failed_imports=False)

# the baseline's pre_paste split by name: loading and resizing per image, the rest after mixing
load_pipeline = [step for step in _base_.pre_paste if step.type != 'RandomFlip']
pre_paste = [step for step in _base_.pre_paste if step.type == 'RandomFlip']
paste_steps = [_base_.copypaste]
train_pipeline = [*pre_paste, *paste_steps, *_base_.post_paste]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MultiImageMixDataset',
        dataset=dict(_base_.train_dataloader.dataset,
                     dataset=dict(_base_.train_dataloader.dataset.dataset,
                                  pipeline=load_pipeline)),
        pipeline=train_pipeline))
