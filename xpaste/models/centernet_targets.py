"""Targets and losses of the CenterNet2 proposal head (class-agnostic heatmap + box distances).

Functions of flat tensors, as CenterNet2's ``centernet.py`` computes them: every location of
every level and image is one row, ordered level first, then image, then ``y * W + x``. Point
coordinates are the centres of the feature cells (``x * stride + stride // 2``).
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

INF = 100000000


def grid_points(featmap_sizes: Sequence[Tuple[int, int]], strides: Sequence[int],
                device=None) -> List[Tensor]:
    """Centres of the cells of each level: ``(H_l * W_l, 2)`` tensors of ``(x, y)``."""
    points = []
    for (h, w), s in zip(featmap_sizes, strides):
        xs = torch.arange(0, w * s, s, dtype=torch.float32, device=device)
        ys = torch.arange(0, h * s, s, dtype=torch.float32, device=device)
        yy, xx = torch.meshgrid(ys, xs, indexing='ij')
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1) + s // 2)
    return points


def level_of_boxes(boxes: Tensor, ranges: Tensor) -> Tensor:
    """``(n, L)`` bool: the levels whose size range holds the box's half diagonal."""
    crit = ((boxes[:, 2:] - boxes[:, :2])**2).sum(dim=1).sqrt() / 2
    return (crit[:, None] >= ranges[None, :, 0]) & (crit[:, None] <= ranges[None, :, 1])


def center_indices(batch_boxes: Sequence[Tensor], featmap_sizes, strides,
                   ranges: Tensor) -> Tensor:
    """Flat indices of the cells holding the box centres, at the levels assigned to each box
    (the positives of the heatmap; CenterNet2's ``_get_label_inds``)."""
    num_imgs = len(batch_boxes)
    areas = [h * w for h, w in featmap_sizes]
    bases, start = [], 0
    for a in areas:
        bases.append(start)
        start += num_imgs * a
    device = ranges.device
    bases = torch.tensor(bases, device=device)
    areas_t = torch.tensor(areas, device=device)
    widths = torch.tensor([w for _, w in featmap_sizes], device=device)
    strides_t = torch.tensor(strides, dtype=torch.float32, device=device)
    inds = []
    for i, boxes in enumerate(batch_boxes):
        if len(boxes) == 0:
            continue
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # n x 2
        cell = (centers[:, None, :] / strides_t[None, :, None]).long()  # n x L x 2
        ind = bases[None] + i * areas_t[None] + cell[..., 1] * widths[None] + cell[..., 0]
        inds.append(ind[level_of_boxes(boxes, ranges)])
    if not inds:
        return torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(inds).long()


def single_image_targets(boxes: Tensor, points: Tensor, strides: Tensor, ranges: Tensor,
                         delta: float, min_radius: float) -> Tuple[Tensor, Tensor]:
    """Heatmap and box targets of one image (CenterNet2's ``_get_ground_truth``).

    Args:
        boxes (Tensor): ``(n, 4)`` ground-truth boxes (x1, y1, x2, y2).
        points (Tensor): ``(M, 2)`` cell centres of all levels.
        strides (Tensor): ``(M,)`` stride of each point.
        ranges (Tensor): ``(M, 2)`` size range (half diagonal) of each point's level.
        delta (float): ``(1 - min_overlap) / (1 + min_overlap)``.
        min_radius (float): Smallest Gaussian radius in pixels.

    Returns:
        tuple: heatmap ``(M,)`` (``exp(-d^2 / r^2)`` of the nearest centre, 0 below 1e-4, 1 at
        the cell of a centre) and box targets ``(M, 4)`` (left, top, right, bottom distances in
        pixels, ``-INF`` where a point regresses no box).
    """
    num_points = points.size(0)
    if len(boxes) == 0:
        return points.new_zeros(num_points), points.new_full((num_points, 4), -INF)
    ltrb = torch.stack([points[:, None, 0] - boxes[None, :, 0],
                        points[:, None, 1] - boxes[None, :, 1],
                        boxes[None, :, 2] - points[:, None, 0],
                        boxes[None, :, 3] - points[:, None, 1]], dim=2)  # M x n x 4
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # n x 2
    s = strides[:, None, None]
    centers_discrete = (centers[None] / s).int().float() * s + s / 2  # M x n x 2
    offset = points[:, None, :] - centers_discrete
    is_peak = (offset**2).sum(dim=2) == 0
    in_box = ltrb.min(dim=2)[0] > 0
    in_center3x3 = (offset.abs() <= s).all(dim=2) & in_box
    crit = ((ltrb[..., :2] + ltrb[..., 2:])**2).sum(dim=2).sqrt() / 2
    in_level = (crit >= ranges[:, None, 0]) & (crit <= ranges[:, None, 1])
    reg_mask = in_center3x3 & in_level

    dist2 = ((points[:, None, :] - centers[None])**2).sum(dim=2)
    dist2[is_peak] = 0
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    radius2 = (delta**2 * 2 * area).clamp(min=min_radius**2)
    weighted = dist2 / radius2[None]

    masked = weighted.clone()
    masked[~reg_mask] = INF
    min_dist, nearest = masked.min(dim=1)
    reg = ltrb[torch.arange(num_points, device=points.device), nearest]
    reg[min_dist == INF] = -INF

    heatmap = torch.exp(-weighted.min(dim=1)[0])
    heatmap[heatmap < 1e-4] = 0
    return heatmap, reg


def batch_targets(batch_boxes: Sequence[Tensor], featmap_sizes, strides, regress_ranges,
                  delta: float, min_radius: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Positive indices, heatmap and box targets (in stride units) of a batch, flat and level
    first, as the flattened predictions."""
    device = batch_boxes[0].device if len(batch_boxes) else None
    points = grid_points(featmap_sizes, strides, device)
    counts = [len(p) for p in points]
    all_points = torch.cat(points)
    point_strides = torch.cat([all_points.new_full((n, ), float(s))
                               for n, s in zip(counts, strides)])
    range_t = all_points.new_tensor(regress_ranges)
    point_ranges = torch.cat([range_t[i][None].expand(n, 2) for i, n in enumerate(counts)])
    heatmaps, regs = [], []
    for boxes in batch_boxes:
        hm, reg = single_image_targets(boxes, all_points, point_strides, point_ranges, delta,
                                       min_radius)
        heatmaps.append(hm.split(counts))
        regs.append((reg / point_strides[:, None]).split(counts))
    # image first -> level first
    heatmap = torch.cat([torch.cat([h[lvl] for h in heatmaps]) for lvl in range(len(counts))])
    reg = torch.cat([torch.cat([r[lvl] for r in regs]) for lvl in range(len(counts))])
    pos_inds = center_indices(batch_boxes, featmap_sizes, strides, range_t)
    return pos_inds, heatmap, reg


def heatmap_focal_loss(logits: Tensor, heatmap: Tensor, pos_inds: Tensor, alpha: float = 0.25,
                       beta: float = 4.0, gamma: float = 2.0, sigmoid_clamp: float = 1e-4,
                       ignore_high_fp: float = -1.0) -> Tuple[Tensor, Tensor]:
    """Summed positive and negative terms of the binary Gaussian focal loss (CenterNet2's
    ``binary_heatmap_focal_loss``): positives are the cells of ``pos_inds``; every cell is a
    negative weighted by ``(1 - heatmap) ** beta``; negatives predicted above
    ``ignore_high_fp`` (if > 0) are ignored."""
    pred = logits.sigmoid().clamp(min=sigmoid_clamp, max=1 - sigmoid_clamp)
    pos_pred = pred[pos_inds]
    pos_loss = -(torch.log(pos_pred) * (1 - pos_pred)**gamma).sum()
    neg_loss = torch.log(1 - pred) * pred**gamma * (1 - heatmap)**beta
    if ignore_high_fp > 0:
        neg_loss = neg_loss * (pred < ignore_high_fp).float()
    neg_loss = -neg_loss.sum()
    if alpha >= 0:
        pos_loss, neg_loss = alpha * pos_loss, (1 - alpha) * neg_loss
    return pos_loss, neg_loss


def ltrb_giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Per-row GIoU loss of boxes given as (left, top, right, bottom) distances from the same
    point, with CenterNet2's ``(inter + 1) / (union + 1)`` IoU."""
    pl, pt, pr, pb = pred.unbind(dim=1)
    tl, tt, tr, tb = target.unbind(dim=1)
    target_area = (tl + tr) * (tt + tb)
    pred_area = (pl + pr) * (pt + pb)
    w_inter = torch.min(pl, tl) + torch.min(pr, tr)
    h_inter = torch.min(pb, tb) + torch.min(pt, tt)
    enclose = (torch.max(pl, tl) + torch.max(pr, tr)) * (torch.max(pb, tb) + torch.max(pt, tt))
    inter = w_inter * h_inter
    union = target_area + pred_area - inter
    ious = (inter + 1.0) / (union + 1.0)
    gious = ious - (enclose - union) / enclose
    return 1 - gious
