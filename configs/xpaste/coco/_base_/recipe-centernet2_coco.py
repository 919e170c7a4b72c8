# The CenterNet2 rows on COCO 2017: the LVIS recipe of ../../centernet2/_base_/recipe_lvis-v1.py
# (R50 ImageNet-21k, large-scale jitter 640, AdamW, cosine, 90k iterations at 64 images) with
# COCO's data and evaluation. COCO is annotated exhaustively, so the classifier is the plain
# sigmoid cross-entropy (no federated sampling) and images are sampled uniformly (no repeat
# factors), as detectron2 trains on COCO; 100 detections per image (COCO evaluation).
_base_ = '../../centernet2/_base_/recipe_lvis-v1.py'

# ---- frequently modified parameters ----
data_root = 'data/coco/'
num_classes = 80

model = dict(
    roi_head=dict(
        bbox_head=[
            dict(head, num_classes=num_classes,
                 loss_cls=dict(head['loss_cls'], class_freq_file=None))
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_head=dict(num_classes=num_classes)),
    test_cfg=dict(rcnn=dict(max_per_img=100)))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(dataset=dict(type='CocoDataset', data_root=data_root,
                              ann_file='annotations/instances_train2017.json',
                              data_prefix=dict(img='train2017/'))))
val_dataloader = dict(
    dataset=dict(type='CocoDataset', data_root=data_root,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    backend_args=None)
test_evaluator = val_evaluator
