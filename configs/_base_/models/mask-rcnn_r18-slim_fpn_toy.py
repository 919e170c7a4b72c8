# A CPU-sized Mask R-CNN for the toy LVIS world: a quarter-width ResNet-18 (base_channels=16:
# stages of 16/32/64/128 channels) and a 64-channel FPN, trained from scratch (no pretrained
# weights; BN statistics are learned). About 0.6 s per iteration at batch 4, 256 px, on 2 cores.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

num_classes = 30  # the toy world's default class count; must equal its json's categories
neck_channels = 64
model = dict(
    backbone=dict(
        depth=18,
        base_channels=16,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=neck_channels),
        mask_head=dict(in_channels=neck_channels, conv_out_channels=64,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300),
        # LVIS evaluation keeps up to 300 detections per image; the toy world has <= 8 objects.
        rcnn=dict(score_thr=0.0001, max_per_img=100)))
