"""CenterNet2's proposal head: targets on a hand-made example, losses, proposals."""
import math

import pytest
import torch
from mmengine.structures import InstanceData

from xpaste.models import CenterNetProposalHead
from xpaste.models.centernet_targets import (batch_targets, grid_points, heatmap_focal_loss,
                                             ltrb_giou_loss)

STRIDES = (8, 16)
RANGES = ((0, 32), (32, 10000))
DELTA = (1 - 0.8) / (1 + 0.8)


def test_grid_points_are_cell_centres():
    pts = grid_points([(2, 3)], [8])[0]
    assert pts.tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]


def test_targets_of_one_box_by_hand():
    # one image, 64x64 input: level 0 is 8x8 cells of 8 px, level 1 is 4x4 cells of 16 px.
    # Box 16..40 x 8..32: centre (28, 20), half diagonal sqrt(24^2 + 24^2) / 2 = 16.97 -> level 0
    box = torch.tensor([[16., 8., 40., 32.]])
    sizes = [(8, 8), (4, 4)]
    pos, hm, reg = batch_targets([box], sizes, STRIDES, RANGES, DELTA, min_radius=4)
    assert hm.shape == (64 + 16, ) and reg.shape == (80, 4)
    # the centre falls in cell (x=3, y=2) of level 0: flat index 2 * 8 + 3 = 19
    assert pos.tolist() == [19]
    assert hm[19] == 1.0
    # heatmap elsewhere: exp(-d^2 / r^2), r^2 = max(2 * delta^2 * area, 16)
    r2 = max(2 * DELTA**2 * 24 * 24, 16.0)
    # cell (x=4, y=2) has centre (36, 20): d^2 = 64
    assert hm[2 * 8 + 4].item() == pytest.approx(math.exp(-64 / r2), rel=1e-5)
    # the heatmap spans every level: its peak is the centre's cell at each level (level 1:
    # cell (1, 1)); level-1 cell (x=2, y=1), centre (40, 24), has d^2 = 144 + 16 and
    # exp(-160 / 16) < 1e-4, which is cut to 0
    assert r2 == 16.0
    assert hm[64 + 1 * 4 + 1] == 1.0
    assert math.exp(-160 / r2) < 1e-4 and hm[64 + 1 * 4 + 2] == 0
    # box targets: the 3x3 cells around the centre cell at level 0, in stride units;
    # the centre cell (28, 20) -> (28-16, 20-8, 40-28, 32-20) / 8
    assert reg[19].tolist() == pytest.approx([1.5, 1.5, 1.5, 1.5])
    regressed = torch.nonzero(reg.max(dim=1)[0] >= 0).flatten().tolist()
    assert regressed == sorted(y * 8 + x for y in (1, 2, 3) for x in (2, 3, 4))
    # no level-1 cell regresses this small box
    assert (reg[64:] < 0).all()


def test_targets_of_a_large_box_go_to_level_1_and_batch_order_is_level_first():
    small = torch.tensor([[16., 8., 40., 32.]])
    large = torch.tensor([[0., 0., 64., 64.]])  # half diagonal 45 -> level 1
    sizes = [(8, 8), (4, 4)]
    pos, hm, reg = batch_targets([small, large], sizes, STRIDES, RANGES, DELTA, 4)
    # rows: level 0 image 0 (64), level 0 image 1 (64), level 1 image 0 (16), image 1 (16)
    assert hm.shape == (160, )
    # large box centre (32, 32) -> level-1 cell (2, 2) of image 1: 128 + 16 + 2 * 4 + 2
    assert sorted(pos.tolist()) == [19, 154]
    assert hm[154] == 1.0
    assert (reg[144:160].max(dim=1)[0] >= 0).sum() > 0
    assert (reg[64:128] < 0).all()  # no level-0 cell of image 1 regresses the large box


def test_empty_image_has_no_positives():
    pos, hm, reg = batch_targets([torch.zeros(0, 4)], [(4, 4)], (8, ), ((0, 1e8), ), DELTA, 4)
    assert pos.numel() == 0 and (hm == 0).all() and (reg < 0).all()


def test_focal_loss_and_giou_by_hand():
    logits = torch.tensor([0.0, 0.0])
    heatmap = torch.tensor([1.0, 0.5])
    pos, neg = heatmap_focal_loss(logits, heatmap, torch.tensor([0]), alpha=0.25, beta=4,
                                  gamma=2, ignore_high_fp=-1)
    # p = 0.5 everywhere: pos = -log(0.5) * 0.25 * 0.25; neg = -(log(0.5) * 0.25 * 0.5^4) * 0.75
    assert pos.item() == pytest.approx(-math.log(0.5) * 0.25 * 0.25)
    assert neg.item() == pytest.approx(-math.log(0.5) * 0.25 * 0.0625 * 0.75)
    # negatives predicted above ignore_high_fp are dropped
    _, neg = heatmap_focal_loss(torch.tensor([5.0]), torch.tensor([0.0]),
                                torch.zeros(0, dtype=torch.long), ignore_high_fp=0.85)
    assert neg.item() == 0
    same = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert ltrb_giou_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)
    assert ltrb_giou_loss(torch.tensor([[1.0, 1.0, 1.0, 1.0]]),
                          torch.tensor([[2.0, 2.0, 2.0, 2.0]])).item() == pytest.approx(
                              1 - 5 / 17, rel=1e-5)


def _head():
    head = CenterNetProposalHead(in_channels=8, feat_channels=8, num_convs=1, strides=STRIDES,
                                 regress_ranges=RANGES, norm_cfg=dict(type='GN', num_groups=4),
                                 test_cfg=dict(nms_pre=50, score_thr=1e-4, max_per_img=7,
                                               nms=dict(type='nms', iou_threshold=0.9)))
    head.init_weights()
    return head


def test_head_losses_and_proposals():
    head = _head()
    feats = (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4))
    heatmaps, regs = head(feats)
    assert heatmaps[0].shape == (2, 1, 8, 8) and regs[1].shape == (2, 4, 4, 4)
    # initialised at the prior: sigmoid(bias) = 0.01, distances 8 strides
    assert heatmaps[0].sigmoid().mean().item() == pytest.approx(0.01, rel=0.2)
    gts = [InstanceData(bboxes=torch.tensor([[16., 8., 40., 32.]]),
                        labels=torch.tensor([0])),
           InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))]
    losses = head.loss_by_feat(heatmaps, regs, gts, [{}, {}])
    assert set(losses) == {'loss_hm_pos', 'loss_hm_neg', 'loss_reg'}
    total = sum(losses.values())
    total.backward()
    assert all(torch.isfinite(v) for v in losses.values())
    props = head.predict_by_feat(heatmaps, regs, [{}, {}])
    assert len(props) == 2 and all(len(p) == 7 for p in props)
    p = props[0]
    # scores are sqrt of the heatmap probability, sorted, boxes non-empty
    assert (p.scores[:-1] >= p.scores[1:]).all()
    assert torch.allclose(p.scores.max(), heatmaps[0][0].sigmoid().max().sqrt()
                          .maximum(heatmaps[1][0].sigmoid().max().sqrt()))
    assert ((p.bboxes[:, 2] > p.bboxes[:, 0]) & (p.bboxes[:, 3] > p.bboxes[:, 1])).all()
    assert (p.labels == 0).all()


def test_head_rejects_a_wrong_number_of_levels_and_classes():
    head = _head()
    with pytest.raises(ValueError, match='one level per stride'):
        head((torch.randn(1, 8, 8, 8), ))
    with pytest.raises(ValueError, match='num_classes must be 1'):
        CenterNetProposalHead(in_channels=8, num_classes=3)
