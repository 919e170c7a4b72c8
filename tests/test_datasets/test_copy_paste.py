"""CopyPasteAnySize: mmdet's CopyPaste between images of different sizes."""
import numpy as np
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from xpaste.datasets.copy_paste import CopyPasteAnySize


def _results(h, w, boxes, labels, value):
    masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        m[y1:y2, x1:x2] = 1
    return dict(img=np.full((h, w, 3), value, dtype=np.uint8),
                img_shape=(h, w),
                gt_bboxes=HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32)),
                gt_bboxes_labels=np.array(labels, dtype=np.int64),
                gt_ignore_flags=np.zeros(len(boxes), dtype=bool),
                gt_masks=BitmapMasks(masks, h, w))


def test_canvas_grows_to_the_pasted_objects_and_occludes_the_destination():
    dst = _results(40, 50, [[0, 0, 30, 30], [35, 5, 45, 15]], [1, 2], value=10)
    # source 60 x 30: its object reaches y = 55, beyond the destination's 40 rows
    src = _results(60, 30, [[0, 20, 30, 55]], [7], value=200)
    dst['mix_results'] = [src]
    out = CopyPasteAnySize(selected=False, mask_occluded_thr=300).transform(dst)
    assert out['img'].shape == (55, 50, 3) and out['img'].dtype == np.uint8
    assert out['img_shape'] == (55, 50)
    assert out['gt_masks'].masks.shape == (3, 55, 50)
    # the pasted pixels come from the source, the grown border is zero, the rest unchanged
    assert (out['img'][20:55, 0:30] == 200).all()
    assert (out['img'][40:55, 30:50] == 0).all()
    assert (out['img'][0:20, 0:30] == 10).all()
    # object 1 lost rows 20..29 and stays (20 x 30 = 600 px > 300); object 2 untouched
    assert out['gt_bboxes_labels'].tolist() == [1, 2, 7]
    assert out['gt_bboxes'].tensor.tolist() == [[0, 0, 30, 20], [35, 5, 45, 15],
                                                [0, 20, 30, 55]]
    assert out['gt_masks'].masks[0].sum() == 600


def test_source_larger_than_the_objects_is_cropped_to_the_canvas():
    dst = _results(40, 50, [[0, 0, 10, 10]], [1], value=10)
    src = _results(80, 90, [[5, 5, 20, 20]], [3], value=200)
    dst['mix_results'] = [src]
    out = CopyPasteAnySize(selected=False).transform(dst)
    assert out['img'].shape == (40, 50, 3)  # the objects fit: the destination keeps its size
    assert out['gt_bboxes_labels'].tolist() == [1, 3]


def test_empty_selection_returns_the_destination():
    dst = _results(40, 50, [[0, 0, 10, 10]], [1], value=10)
    src = _results(80, 90, [], [], value=200)
    dst['mix_results'] = [src]
    out = CopyPasteAnySize(selected=False).transform(dst)
    assert out['img'].shape == (40, 50, 3) and out['gt_bboxes_labels'].tolist() == [1]
