"""Segmenters for bank quality: SAM with background points on the border (DiverGen) and any
MMDetection instance segmentation model (a tiny random-weight Mask R-CNN built from the toy
config, saved and loaded through mmdet's own API)."""
import os.path as osp

import numpy as np
import pytest

from xpaste.builder.segmenters import MMDetSegmenter, SAMSegmenter, build_segmenters
from xpaste.builder.segmenters.detector import normalise_class_name, pick_instance
from xpaste.builder.segmenters.sam import border_point_coords

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# --------------------------------------------------------------------- SAM, border points
def test_border_point_coords():
    pts = border_point_coords(100, 200, 4, 5)
    assert pts.tolist() == [[5, 5], [194, 5], [194, 94], [5, 94]]  # (x, y) corners
    more = border_point_coords(100, 200, 8, 5)
    assert len(more) == 8 and more[:4].tolist() == pts.tolist()
    inner = more[4:]
    # the extra points lie on the inner rectangle's sides, away from the corners
    on_side = (np.isclose(inner[:, 0], 5) | np.isclose(inner[:, 0], 194)
               | np.isclose(inner[:, 1], 5) | np.isclose(inner[:, 1], 94))
    assert on_side.all() and len({tuple(p) for p in inner.tolist()}) == 4
    assert border_point_coords(4, 4, 4, 5).max() <= 3  # a margin larger than the image


class FakeSam:
    """Stands for ``Sam.forward``: the 'whole' multimask output is the image border (the
    background); records the prompts it gets."""

    def __init__(self):
        self.calls = []

    def __call__(self, batch, multimask_output):
        import torch
        assert multimask_output
        self.calls.append(batch)
        outs = []
        for entry in batch:
            h, w = entry['original_size']
            masks = torch.zeros((1, 3, h, w), dtype=torch.bool)
            masks[0, 2] = True
            masks[0, 2, 4:-4, 6:-6] = False  # background = a frame around the object
            masks[0, 0, :2, :2] = True  # a small part
            outs.append(dict(masks=masks, iou_predictions=torch.tensor([[0.9, 0.1, 0.2]])))
        return outs


def fake_sam(**kwargs):
    from segment_anything.utils.transforms import ResizeLongestSide
    seg = SAMSegmenter(checkpoint='unused.pth', batch_size=2, device='cpu', **kwargs)
    seg.model, seg._device, seg._transform = FakeSam(), 'cpu', ResizeLongestSide(64)
    return seg


def test_sam_border_points_take_the_background_complement():
    seg = fake_sam(prompt_mode='border_points', border_points=4, border_margin=5)
    images = [np.zeros((40, 60, 3), np.uint8), np.zeros((30, 20, 3), np.uint8)]
    masks = seg.segment(images, {'name': 'x'})
    for image, mask in zip(images, masks):
        h, w = image.shape[:2]
        expected = np.zeros((h, w), bool)
        expected[4:-4, 6:-6] = True
        assert np.array_equal(mask, expected)
    entry = seg.model.calls[0][0]
    assert 'boxes' not in entry and entry['point_labels'].tolist() == [[1, 1, 1, 1]]
    # the points are the corners, 5 px in, in SAM's input coordinates (longest side 64)
    scale = 64 / 60
    assert np.allclose(entry['point_coords'][0].numpy(),
                       border_point_coords(40, 60, 4, 5) * scale, atol=0.5)
    # box mode: the box prompt and the best mask by predicted IoU
    box = fake_sam()
    mask = box.segment(images[:1], {'name': 'x'})[0]
    assert 'boxes' in box.model.calls[0][0] and mask[:2, :2].all() and mask.sum() == 4


def test_sam_prompt_mode_is_described_only_when_not_the_box():
    box = SAMSegmenter(checkpoint='x.pth')
    assert 'prompt_mode' not in box.describe()  # box-prompted builds keep their fingerprints
    bg = SAMSegmenter(checkpoint='x.pth', prompt_mode='border_points', border_points=8)
    assert bg.describe()['prompt_mode'] == 'border_points'
    assert bg.describe()['border_points'] == 8
    with pytest.raises(ValueError, match=r"prompt_mode must be one of \('box', 'border_points'\)"):
        SAMSegmenter(checkpoint='x.pth', prompt_mode='points')
    with pytest.raises(ValueError, match=r'border_points must lie in \[4, inf\), got 2'):
        SAMSegmenter(checkpoint='x.pth', border_points=2)
    with pytest.raises(ValueError, match='background_index must be 0, 1 or 2, got 3'):
        SAMSegmenter(checkpoint='x.pth', background_index=3)


def test_sam_border_points_with_a_tiny_checkpoint(tmp_path):
    from xpaste.testing.random_models import TINY_SAM_TYPE, save_tiny_sam
    ckpt = save_tiny_sam(str(tmp_path / 'sam_tiny.pth'))
    kwargs = dict(checkpoint=ckpt, model_type=TINY_SAM_TYPE, device='cpu', batch_size=2)
    seg = SAMSegmenter(prompt_mode='border_points', **kwargs)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40 + 8 * i, 50, 3), dtype=np.uint8) for i in range(3)]
    masks = seg.segment(images, {'name': 'x'})
    assert [m.shape for m in masks] == [im.shape[:2] for im in images]
    assert all(m.dtype == bool for m in masks)
    # the complement of what the same model gives for the background prompt
    import torch
    h, w = images[0].shape[:2]
    rgb = seg._transform.apply_image(np.ascontiguousarray(images[0][..., ::-1]))
    entry = dict(image=torch.as_tensor(rgb).permute(2, 0, 1).contiguous(), original_size=(h, w),
                 **seg._prompt(h, w))
    with torch.inference_mode():
        background = seg.model([entry], multimask_output=True)[0]['masks'][0, 2].numpy()
    assert np.array_equal(masks[0], ~background)


# ----------------------------------------------------------------------------- MMDetection
def test_pick_instance():
    scores = np.array([0.2, 0.9, 0.5, 0.7])
    labels = np.array([3, 1, 3, 2])
    assert pick_instance(scores, labels) == 1
    assert pick_instance(scores, labels, allowed=[3]) == 2
    assert pick_instance(scores, labels, allowed=[3], score_thr=0.6) == -1
    assert pick_instance(scores, labels, allowed=[]) == -1
    assert pick_instance(np.zeros(0), np.zeros(0)) == -1
    assert normalise_class_name('Aerosol_Can') == 'aerosol can'


def test_best_mask_of_fake_results():
    import torch
    from mmengine.structures import InstanceData
    seg = MMDetSegmenter('cfg.py', 'ckpt.pth', score_thr=0.3)
    masks = torch.zeros((3, 10, 12), dtype=torch.bool)
    for i in range(3):
        masks[i, i:i + 2] = True
    inst = InstanceData(scores=torch.tensor([0.5, 0.8, 0.2]), labels=torch.tensor([4, 1, 4]),
                        masks=masks)
    assert np.array_equal(seg._best_mask((10, 12), inst, None), masks[1].numpy())
    assert np.array_equal(seg._best_mask((10, 12), inst, [4]), masks[0].numpy())
    assert not seg._best_mask((10, 12), inst, [7]).any()  # no detection of the class
    soft = InstanceData(scores=torch.tensor([0.9]), labels=torch.tensor([0]),
                        masks=torch.full((1, 10, 12), 0.7))
    assert seg._best_mask((10, 12), soft, None).all()  # probabilities, thresholded
    with pytest.raises(RuntimeError, match='mask of shape'):
        seg._best_mask((20, 12), inst, None)


def test_mmdet_segmenter_validates_and_checks_paths(tmp_path):
    with pytest.raises(ValueError, match=r'score_thr must be in \[0, 1\], got 2'):
        MMDetSegmenter('cfg.py', 'ckpt.pth', score_thr=2)
    with pytest.raises(ValueError, match='class_map must be a dict'):
        MMDetSegmenter('cfg.py', 'ckpt.pth', class_map=['a'])
    with pytest.raises(FileNotFoundError, match='config.*missing_cfg.py'):
        MMDetSegmenter(str(tmp_path / 'missing_cfg.py'), 'ckpt.pth').check()
    seg = MMDetSegmenter('mmdet::lvis/mask-rcnn_r50_fpn_sample1e-3_ms-1x_lvis-v1.py',
                         str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='checkpoint.*missing.pth'):
        seg.check()  # the mmdet:: config resolves; the checkpoint does not exist


TINY_CLASSES = ('red_plain_star', 'Zebra', 'aerosol can')


@pytest.fixture(scope='module')
def tiny_mask_rcnn(tmp_path_factory):
    """A random-weight slim Mask R-CNN (configs/_base_/models/mask-rcnn_r18-slim_fpn_toy.py, 3
    classes) with a test pipeline, and its checkpoint (class names in its meta)."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    root = tmp_path_factory.mktemp('mask_rcnn')
    cfg_path = root / 'tiny_mask_rcnn.py'
    cfg_path.write_text(
        f"_base_ = ['{ROOT}/configs/_base_/models/mask-rcnn_r18-slim_fpn_toy.py']\n"
        "default_scope = 'mmdet'\n"
        "num_classes = 3\n"
        "model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes),\n"
        "                           mask_head=dict(num_classes=num_classes)))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'),\n"
        "                 dict(type='Resize', scale=(64, 64), keep_ratio=True),\n"
        "                 dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', "
        "'ori_shape', 'img_shape', 'scale_factor'))]\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_path)).model)
    model.init_weights()
    ckpt = root / 'tiny_mask_rcnn.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': TINY_CLASSES}}}, str(ckpt))
    return str(cfg_path), str(ckpt)


def test_mmdet_segmenter_with_a_tiny_mask_rcnn(tiny_mask_rcnn):
    from mmdet.apis import inference_detector
    cfg, ckpt = tiny_mask_rcnn
    seg, = build_segmenters([dict(type='MMDetSegmenter', config=cfg, checkpoint=ckpt,
                                  target_class=True, class_map={'aerosol_can': 'aerosol can'},
                                  fallback_any_class=False, score_thr=0.0, device='cpu')])
    assert seg.uses_gpu and seg.name == 'mmdet'
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48 + 8 * i, 56, 3), dtype=np.uint8) for i in range(2)]
    masks = seg.segment(images, {'name': 'zebra'})
    assert [m.shape for m in masks] == [im.shape[:2] for im in images]
    assert all(m.dtype == bool for m in masks)
    # class names from the checkpoint, matched by name: zebra -> label 1
    assert seg.class_labels({'name': 'zebra'}) == [1]
    assert seg.class_labels({'name': 'aerosol_can'}) == [2]
    assert seg.class_labels({'name': 'yak'}) == []  # unknown, no fallback: nothing counts
    assert not seg.segment(images[:1], {'name': 'yak'})[0].any()
    # the mask of the best detection of the image's class
    result = inference_detector(seg.model, images[:1])[0].pred_instances
    best = pick_instance(result.scores.numpy(), result.labels.numpy(), [1], 0.0)
    assert best >= 0 and np.array_equal(masks[0], result.masks[best].numpy())
    any_class = MMDetSegmenter(cfg, ckpt, score_thr=0.0, device='cpu')
    assert any_class.class_labels({'name': 'yak'}) is None
    desc = seg.describe()
    assert desc['type'] == 'MMDetSegmenter' and desc['target_class'] and desc['config'] == cfg


def test_ensemble4_config_builds_its_segmenters():
    from mmengine.config import Config

    from xpaste.builder.defaults import merge_defaults
    cfg = merge_defaults(Config.fromfile(osp.join(ROOT, 'configs/bank/lvis_sd15_ensemble4.py'))
                         .to_dict())
    segs = build_segmenters(cfg['segment']['segmenters'])
    assert [s.name for s in segs] == ['classical', 'sam', 'clipseg', 'mmdet']
    assert segs[3].target_class and segs[3].config.startswith('mmdet::lvis/')
