"""CenterNet2's cascade RoI head: score combination, one mask head, training and inference."""
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from xpaste.models import CenterNet2RoIHead, combine_scores

pytest.importorskip('mmcv.ops')


def test_combine_scores_is_sqrt_of_mean_probability_times_proposal_score():
    p1 = torch.tensor([[0.2, 0.8, 0.1], [0.5, 0.5, 0.0]])
    p2 = torch.tensor([[0.4, 0.4, 0.3], [0.1, 0.9, 0.0]])
    p3 = torch.tensor([[0.6, 0.0, 0.2], [0.3, 0.3, 0.0]])
    prop = torch.tensor([0.25, 1.0])
    out = combine_scores([p1, p2, p3], prop)
    mean = (p1 + p2 + p3) / 3
    assert torch.allclose(out, (mean * prop[:, None]).sqrt())
    assert out[0, 0].item() == pytest.approx((0.4 * 0.25)**0.5)
    assert torch.allclose(combine_scores([p1, p2, p3], prop, mult_proposal_score=False), mean)


def _head(num_classes=5):
    ext = dict(type='SingleRoIExtractor', out_channels=8, featmap_strides=[8, 16],
               roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=True))
    bbox = dict(type='CenterNet2BBoxHead', in_channels=8, fc_out_channels=16, roi_feat_size=7,
                num_classes=num_classes, reg_class_agnostic=True,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.] * 4,
                                target_stds=[0.1, 0.1, 0.2, 0.2]),
                loss_cls=dict(type='FederatedLoss'), loss_bbox=dict(type='L1Loss'))
    assign = dict(type='MaxIoUAssigner', pos_iou_thr=0.6, neg_iou_thr=0.6, min_pos_iou=0.6,
                  match_low_quality=False, ignore_iof_thr=-1)
    train_cfg = [dict(assigner=assign, sampler=dict(type='RandomSampler', num=16,
                                                     pos_fraction=0.25, neg_pos_ub=-1,
                                                     add_gt_as_proposals=True),
                      mask_size=28, pos_weight=-1, debug=False)] + [
        dict(assigner=dict(assign, pos_iou_thr=t, neg_iou_thr=t, min_pos_iou=t),
             sampler=dict(type='PseudoSampler'), mask_size=28, pos_weight=-1, debug=False)
        for t in (0.7, 0.8)]
    head = CenterNet2RoIHead(
        num_stages=3, stage_loss_weights=[1, 1, 1], bbox_roi_extractor=ext,
        bbox_head=bbox, mask_roi_extractor=dict(ext, roi_layer=dict(
            ext['roi_layer'], output_size=14)),
        mask_head=dict(type='FCNMaskHead', num_convs=1, in_channels=8, conv_out_channels=8,
                       num_classes=num_classes, class_agnostic=True),
        train_cfg=[ConfigDict(c) for c in train_cfg],
        test_cfg=ConfigDict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=10, mask_thr_binary=0.5))
    head.init_weights()
    return head


def _sample():
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         scale_factor=(1.0, 1.0)))
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 12:44] = 1
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[12., 10., 44., 40.]]),
                                       labels=torch.tensor([3]),
                                       masks=BitmapMasks(masks.numpy(), 64, 64))
    return sample


def test_one_mask_head_and_training_losses():
    head = _head()
    assert not isinstance(head.mask_head, torch.nn.ModuleList)
    x = (torch.randn(1, 8, 8, 8, requires_grad=True), torch.randn(1, 8, 4, 4))
    props = InstanceData(bboxes=torch.tensor([[10., 8., 40., 40.], [0., 0., 30., 20.],
                                              [30., 30., 60., 60.]]),
                         scores=torch.tensor([0.9, 0.5, 0.4]))
    losses = head.loss(x, [props], [_sample()])
    expected = {f's{s}.{k}' for s in range(3) for k in ('loss_cls', 'loss_bbox', 'acc')}
    assert expected | {'loss_mask'} == set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert x[0].grad is not None and torch.isfinite(x[0].grad).all()


def test_predict_scores_are_the_combined_scores():
    head = _head().eval()
    x = (torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4))
    props = InstanceData(bboxes=torch.tensor([[10., 8., 40., 40.]]),
                         scores=torch.tensor([0.36]))
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0))
    with torch.no_grad():
        scores = head.forward(x, [props], [_sample()])[0][0]
        results = head.predict_bbox(x, [meta], [props], head.test_cfg)
    # one proposal, score_thr 0: each class is a detection scored sqrt(mean prob x 0.36)
    assert sorted(results[0].scores.tolist()) == pytest.approx(sorted(scores[0, :5].tolist()),
                                                               rel=1e-5)
    assert (scores[0, :5] <= 0.6 + 1e-6).all()  # sqrt(p x 0.36) <= 0.6
    with torch.no_grad():
        masked = head.predict_mask(x, [meta], results)
    assert masked[0].masks.shape == (5, 64, 64)


def test_mask_head_lists_are_rejected():
    with pytest.raises(TypeError, match='one mask head'):
        h = _head()
        h.init_mask_head(None, [dict(type='FCNMaskHead')] * 3)


def test_class_specific_box_regression_is_rejected():
    head = _head()
    cfg = dict(num_stages=3, stage_loss_weights=[1, 1, 1],
               bbox_roi_extractor=dict(type='SingleRoIExtractor', out_channels=8,
                                       featmap_strides=[8],
                                       roi_layer=dict(type='RoIAlign', output_size=7)),
               bbox_head=dict(type='CenterNet2BBoxHead', in_channels=8, fc_out_channels=16,
                              num_classes=5, reg_class_agnostic=False))
    with pytest.raises(ValueError, match='reg_class_agnostic=True'):
        CenterNet2RoIHead(**cfg)
    assert all(h.reg_class_agnostic for h in head.bbox_head)
