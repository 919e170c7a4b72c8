# CenterNet2 R50-FPN with federated loss: the detector of X-Paste (and Detic). Every value is
# the one the official configs set, with its source:
#   [XP]  yoctta/XPaste configs/Base-C2_L_R5021k_640b64_4x.yaml (= Detic's file of that name)
#   [C2]  CenterNet2's defaults (projects/CenterNet2/centernet/config.py)
#   [D2]  detectron2's defaults (detectron2/config/defaults.py)
#   [DT]  Detic's defaults (detic/config.py, detic/modeling/roi_heads/*)
# The modules are in xpaste/models (CenterNet2, CenterNetProposalHead, CenterNet2RoIHead,
# CenterNet2BBoxHead, FederatedLoss): a config using this file imports them with
#   custom_imports = dict(imports=['xpaste.datasets', 'xpaste.models'], ...)

# ---- frequently modified parameters ----
num_classes = 1203  # [XP] ROI_HEADS.NUM_CLASSES (LVIS v1)
# [XP] MODEL.WEIGHTS: ResNet-50 pretrained on ImageNet-21k (MIIL), loaded as-is (torchvision
# key names); training stops with a message if the file is missing
pretrained = 'checkpoints/resnet50_miil_21k.pth'
pretrained_hint = (
    'Download the ImageNet-21k ResNet-50 of MIIL (as X-Paste and Detic do): wget '
    'https://miil-public-eu.oss-eu-central-1.aliyuncs.com/model-zoo/ImageNet_21K_P/models/'
    'resnet50_miil_21k.pth -P checkpoints/')
# [DT] ROI_BOX_HEAD.CAT_FREQ_PATH: image count per class, written by
#   python tools/data/lvis_class_frequency.py data/lvis_v1/annotations/lvis_v1_train.json \
#       --out data/lvis_v1/annotations/lvis_v1_train_cat_info.json
class_freq_file = 'data/lvis_v1/annotations/lvis_v1_train_cat_info.json'

neck_channels = 256  # [D2] FPN.OUT_CHANNELS
cascade_ious = (0.6, 0.7, 0.8)  # [XP] ROI_BOX_CASCADE_HEAD.IOUS
# [D2] ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS (10,10,5,5), (20,20,10,10), (30,30,15,15) as stds
cascade_stds = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
# [D2] ROIPooler: canonical box 224 at level 4 -> boxes below 224 px on P3, 224-448 on P4,
# above on P5; mmdet's extractor gives that with finest_scale 112
roi_finest_scale = 112

bbox_head = dict(
    type='CenterNet2BBoxHead',
    in_channels=neck_channels,
    fc_out_channels=1024,  # [D2] ROI_BOX_HEAD.FC_DIM; [XP] NUM_FC 2
    roi_feat_size=7,  # [XP] ROI_BOX_HEAD.POOLER_RESOLUTION
    num_classes=num_classes,
    reg_class_agnostic=True,  # [XP] CLS_AGNOSTIC_BBOX_REG
    prior_prob=0.01,  # [DT] ROI_BOX_HEAD.PRIOR_PROB (sigmoid classifier)
    bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                    target_stds=cascade_stds[0]),
    # [XP] USE_SIGMOID_CE + USE_FED_LOSS; [DT] FED_LOSS_NUM_CAT 50, FED_LOSS_FREQ_WEIGHT 0.5
    loss_cls=dict(type='FederatedLoss', class_freq_file=class_freq_file, num_sample_cats=50,
                  freq_weight_power=0.5, loss_weight=1.0),
    # [D2] BBOX_REG_LOSS_TYPE smooth_l1 with SMOOTH_L1_BETA 0 = L1
    loss_bbox=dict(type='L1Loss', loss_weight=1.0))

model = dict(
    type='CenterNet2',
    pretrained_hint=pretrained_hint,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # [XP] PIXEL_MEAN / PIXEL_STD in RGB (INPUT.FORMAT RGB)
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=True,
        pad_size_divisor=32),  # [D2] FPN size_divisibility = stride of its last input (C5)
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),  # [XP] FPN.IN_FEATURES layer3-5 (C3-C5)
        frozen_stages=-1,  # [DT] TIMM.FREEZE_AT 0
        norm_cfg=dict(type='BN', requires_grad=False),  # [DT] TIMM.NORM FrozenBN
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        type='FPN',
        in_channels=[512, 1024, 2048],
        out_channels=neck_channels,
        start_level=0,
        # [XP] build_p67_timm_fpn_backbone: P6 = conv(P5), P7 = conv(relu(P6))
        add_extra_convs='on_output',
        relu_before_extra_convs=True,
        num_outs=5),
    rpn_head=dict(
        type='CenterNetProposalHead',
        in_channels=neck_channels,
        feat_channels=neck_channels,
        num_convs=4,  # [C2] NUM_BOX_CONVS (ONLY_PROPOSAL: no class tower)
        strides=(8, 16, 32, 64, 128),  # [C2] FPN_STRIDES, IN_FEATURES p3-p7
        regress_ranges=((0, 80), (64, 160), (128, 320), (256, 640), (512, 10000000)),  # [C2] SOI
        hm_min_overlap=0.8,  # [C2] HM_MIN_OVERLAP
        min_radius=4,  # [C2] MIN_RADIUS
        # [C2] HM_FOCAL_ALPHA 0.25, HM_FOCAL_BETA 4, LOSS_GAMMA 2, SIGMOID_CLAMP 1e-4;
        # [XP] POS_WEIGHT 0.5, NEG_WEIGHT 0.5, IGNORE_HIGH_FP 0.85
        loss_hm=dict(alpha=0.25, beta=4.0, gamma=2.0, pos_weight=0.5, neg_weight=0.5,
                     ignore_high_fp=0.85, sigmoid_clamp=1e-4),
        reg_weight=1.0,  # [XP] REG_WEIGHT (NOT_NORM_REG: plain mean over cells)
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),  # [C2] NORM GN
        prior_prob=0.01),  # [C2] PRIOR_PROB
    roi_head=dict(
        type='CenterNet2RoIHead',
        num_stages=3,
        stage_loss_weights=[1, 1, 1],  # [D2] cascade: stages summed, gradient scaled 1/3
        mult_proposal_score=True,  # [XP] MULT_PROPOSAL_SCORE
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            # [D2] ROIAlignV2 (aligned), POOLER_SAMPLING_RATIO 0; [XP] IN_FEATURES p3-p5
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0, aligned=True),
            out_channels=neck_channels,
            featmap_strides=[8, 16, 32],
            finest_scale=roi_finest_scale),
        bbox_head=[
            dict(bbox_head, bbox_coder=dict(bbox_head['bbox_coder'], target_stds=stds))
            for stds in cascade_stds
        ],
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0, aligned=True),
            out_channels=neck_channels,
            featmap_strides=[8, 16, 32],
            finest_scale=roi_finest_scale),
        # [XP] MaskRCNNConvUpsampleHead, NUM_CONV 4, POOLER_RESOLUTION 14, CLS_AGNOSTIC_MASK;
        # [D2] CONV_DIM 256
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=neck_channels,
            conv_out_channels=256,
            num_classes=num_classes,
            class_agnostic=True,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(
        rpn=None,
        # [XP] PRE_NMS_TOPK_TRAIN 4000, POST_NMS_TOPK_TRAIN 2000, NMS_TH_TRAIN 0.9,
        # INFERENCE_TH 1e-4
        rpn_proposal=dict(nms_pre=4000, max_per_img=2000, score_thr=0.0001,
                          nms=dict(type='nms', iou_threshold=0.9)),
        rcnn=[
            # stage 0: [D2] ROI_HEADS.BATCH_SIZE_PER_IMAGE 512, POSITIVE_FRACTION 0.25,
            # PROPOSAL_APPEND_GT; [XP] IOU_THRESHOLDS 0.6 (no low-quality matches)
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=cascade_ious[0],
                               neg_iou_thr=cascade_ious[0], min_pos_iou=cascade_ious[0],
                               match_low_quality=False, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25,
                              neg_pos_ub=-1, add_gt_as_proposals=True),
                 mask_size=28, pos_weight=-1, debug=False),
        ] + [
            # stages 1-2: every refined box of the previous stage is labelled ([D2] cascade
            # _match_and_label_boxes), none is sampled away
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                               min_pos_iou=iou, match_low_quality=False, ignore_iof_thr=-1),
                 sampler=dict(type='PseudoSampler'),
                 mask_size=28, pos_weight=-1, debug=False)
            for iou in cascade_ious[1:]
        ]),
    test_cfg=dict(
        # [XP] PRE_NMS_TOPK_TEST 1000, POST_NMS_TOPK_TEST 256, NMS_TH_TEST 0.9
        rpn=dict(nms_pre=1000, max_per_img=256, score_thr=0.0001,
                 nms=dict(type='nms', iou_threshold=0.9)),
        # [XP] SCORE_THRESH_TEST 0.02, NMS_THRESH_TEST 0.5, TEST.DETECTIONS_PER_IMAGE 300
        rcnn=dict(score_thr=0.02, nms=dict(type='nms', iou_threshold=0.5), max_per_img=300,
                  mask_thr_binary=0.5)))
