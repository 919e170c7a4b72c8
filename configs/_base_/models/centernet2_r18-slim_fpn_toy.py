# A CPU-sized CenterNet2 for the toy LVIS world: the architecture of
# centernet2_r50-in21k_fpn.py with a quarter-width ResNet-18 (base_channels=16: stages of
# 16/32/64/128 channels) trained from scratch (BN statistics learned), a 64-channel FPN (P3-P7),
# a two-conv proposal head, fewer proposals and RoIs, and RoIAlign with 2x2 samples per bin
# (the adaptive count of the full model pools thousands of points from the large early
# proposals, which dominates a CPU iteration). The toy world is exhaustively
# annotated and has fewer classes than the federated subset (50), so its classifier is the
# plain sigmoid cross-entropy (class_freq_file=None).
_base_ = './centernet2_r50-in21k_fpn.py'

num_classes = 30  # the toy world's default class count; must equal its json's categories
neck_channels = 64
rcnn_train = _base_.model.train_cfg.rcnn
model = dict(
    pretrained_hint='',
    backbone=dict(
        depth=18,
        base_channels=16,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=neck_channels),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels, num_convs=2),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels,
                                roi_layer=dict(sampling_ratio=2)),
        bbox_head=[
            dict(head, in_channels=neck_channels, fc_out_channels=256, num_classes=num_classes,
                 loss_cls=dict(head['loss_cls'], class_freq_file=None))
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_roi_extractor=dict(out_channels=neck_channels, roi_layer=dict(sampling_ratio=2)),
        mask_head=dict(in_channels=neck_channels, conv_out_channels=64,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=64),
        rcnn=[dict(rcnn_train[0], sampler=dict(rcnn_train[0]['sampler'], num=64))]
        + rcnn_train[1:]),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        # LVIS evaluation keeps up to 300 detections per image; the toy world has <= 8 objects
        rcnn=dict(score_thr=0.0001, max_per_img=100)))
