"""segment-anything as a segmenter."""
from typing import Optional

import numpy as np

from xpaste.utils.checks import check_choice, check_number
from ..hub import check_model_source, resolve_device, resolve_dtype, torch_dtype
from .base import SEGMENTERS, BaseSegmenter

SAM_PROMPT_MODES = ('box', 'border_points')


def border_point_coords(height: int, width: int, num: int = 4, margin: int = 5) -> np.ndarray:
    """``num`` (x, y) points ``margin`` px inside the border of an image: the four corners,
    then the rest spread evenly along the border (clockwise from the top-left corner).

    Returns:
        np.ndarray: float32 ``(num, 2)``.
    """
    x0, y0 = min(margin, width - 1), min(margin, height - 1)
    x1, y1 = max(width - 1 - margin, x0), max(height - 1 - margin, y0)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    extra = num - 4
    points = list(corners)
    if extra > 0:
        # positions along the perimeter of the inner rectangle, away from the corners
        w, h = x1 - x0, y1 - y0
        perimeter = max(2 * (w + h), 1)
        for k in range(extra):
            d = perimeter * (k + 0.5) / extra
            if d < w:
                points.append((x0 + d, y0))
            elif d < w + h:
                points.append((x1, y0 + d - w))
            elif d < 2 * w + h:
                points.append((x1 - (d - w - h), y1))
            else:
                points.append((x0, y1 - (d - 2 * w - h)))
    return np.asarray(points, np.float32)


def _image_encoder_in(encoder, dtype) -> None:
    """Run SAM's image encoder in ``dtype``: its weights are cast, its input is cast on the way
    in and its embeddings back to float32 on the way out, so that the prompts and the mask
    decoder stay float32."""
    encoder.to(dtype)
    encoder.register_forward_pre_hook(
        lambda module, args: tuple(a.to(dtype) if hasattr(a, 'to') else a for a in args))
    encoder.register_forward_hook(lambda module, args, output: output.float())


@SEGMENTERS.register_module()
class SAMSegmenter(BaseSegmenter):
    """segment-anything, prompted with a box over the whole image (minus a margin) or with
    points on the image border taken as background.

    The model is built with ``segment_anything.sam_model_registry[model_type](checkpoint=...)``;
    images are batched through ``Sam.forward`` on the GPU. Two prompt modes:

    - ``'box'``: a box over the image; the mask with the highest predicted IoU of the multimask
      output is the object.
    - ``'border_points'`` (DiverGen's "SAM-background", official code
      ``segmentation/get_background_sam_mask.py``): ``border_points`` points placed
      ``border_margin`` px inside the image border (the four corners first, then evenly along
      the sides) prompt the *background*; the multimask output ``background_index`` (2: the
      largest, "whole" level, as DiverGen takes it) is the background, and the object is its
      complement. It suits generated images whose object is not centred or does not fill a box.

    Args:
        checkpoint (str): Local SAM checkpoint (e.g. ``sam_vit_h_4b8939.pth``).
        model_type (str): Key of ``sam_model_registry``: ``'vit_h'``, ``'vit_l'``, ``'vit_b'``.
            Defaults to ``'vit_h'``.
        box_margin (float): Margin of the box prompt, as a fraction of each side.
            Defaults to 0.02.
        batch_size (int): Images per forward. Defaults to 8.
        device (str): Defaults to ``'auto'``.
        name (str, optional): Defaults to ``'sam'``.
        prompt_mode (str): ``'box'`` or ``'border_points'``. Defaults to ``'box'``.
        border_points (int): Background points of ``'border_points'`` (>= 4: the corners, then
            more along the sides). Defaults to 4 (DiverGen's).
        border_margin (int): Distance of the points from the border, in pixels of the original
            image. Defaults to 5 (DiverGen's).
        background_index (int): The multimask output taken as the background (0..2).
            Defaults to 2.
        dtype (str): Dtype of the image encoder (nearly all of SAM's compute): ``'float32'``,
            ``'float16'`` or ``'bfloat16'``; the prompt encoder and mask decoder stay float32.
            On the CPU bfloat16 runs and float16 falls back to float32 (with a warning).
            Defaults to ``'float32'``.
        built_model (torch.nn.Module, optional): An already built ``Sam`` (benchmarks with
            random weights, tests); ``checkpoint`` is then only recorded. Defaults to None.
    """

    default_name = 'sam'
    uses_gpu = True

    def __init__(self,
                 checkpoint: str,
                 model_type: str = 'vit_h',
                 box_margin: float = 0.02,
                 batch_size: int = 8,
                 device: str = 'auto',
                 name: Optional[str] = None,
                 prompt_mode: str = 'box',
                 border_points: int = 4,
                 border_margin: int = 5,
                 background_index: int = 2,
                 dtype: str = 'float32',
                 built_model=None):
        super().__init__(name)
        torch_dtype(dtype)  # validates the name
        if not 0 <= box_margin < 0.5:
            raise ValueError(f'SAMSegmenter.box_margin must be in [0, 0.5), got {box_margin!r}')
        batch_size = check_number('SAMSegmenter.batch_size', batch_size, 1, integer=True)
        check_choice('SAMSegmenter.prompt_mode', prompt_mode, SAM_PROMPT_MODES)
        border_points = check_number('SAMSegmenter.border_points', border_points, 4, integer=True)
        border_margin = check_number('SAMSegmenter.border_margin', border_margin, 0, integer=True)
        if background_index not in (0, 1, 2):
            raise ValueError(f'SAMSegmenter.background_index must be 0, 1 or 2, got '
                             f'{background_index!r}')
        self.prompt_mode = prompt_mode
        self.border_points = border_points
        self.border_margin = border_margin
        self.background_index = background_index
        self.checkpoint = checkpoint
        self.model_type = model_type
        self.box_margin = box_margin
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.local_rank = 0
        self.model = None
        self.built_model = built_model

    def check(self) -> None:
        if self.built_model is not None:
            return
        check_model_source(
            self.checkpoint, f'segmenter {self.name!r} checkpoint', allow_hub_id=False, kind='file')
        from segment_anything import sam_model_registry
        check_choice('SAMSegmenter.model_type', self.model_type, sorted(sam_model_registry))

    def setup(self) -> None:
        if self.model is not None:
            return
        self.check()
        import torch
        from segment_anything import sam_model_registry
        from segment_anything.utils.transforms import ResizeLongestSide
        what = f'segmenter {self.name!r}'
        self._device = resolve_device(self.device, self.local_rank, what)
        dtype = resolve_dtype(self.dtype, self._device, what, cpu_dtypes=('float32', 'bfloat16'))
        model = self.built_model
        if model is None:
            model = sam_model_registry[self.model_type](checkpoint=self.checkpoint)
        self.model = model.to(self._device).eval()
        if dtype != torch.float32:
            _image_encoder_in(model.image_encoder, dtype)
        self._transform = ResizeLongestSide(model.image_encoder.img_size)

    def segment(self, images, category=None):
        import torch
        self.setup()
        masks = []
        for start in range(0, len(images), self.batch_size):
            batch = []
            for image in images[start:start + self.batch_size]:
                h, w = image.shape[:2]
                rgb = self._transform.apply_image(np.ascontiguousarray(image[..., ::-1]))
                tensor = torch.as_tensor(rgb, device=self._device).permute(2, 0, 1).contiguous()
                batch.append(dict(image=tensor, original_size=(h, w), **self._prompt(h, w)))
            with torch.inference_mode():
                outputs = self.model(batch, multimask_output=True)
            for out in outputs:
                if self.prompt_mode == 'border_points':  # the background's complement
                    masks.append(~out['masks'][0, self.background_index].cpu().numpy().astype(bool))
                else:
                    best = int(out['iou_predictions'][0].argmax())
                    masks.append(out['masks'][0, best].cpu().numpy().astype(bool))
        return masks

    def _prompt(self, h: int, w: int) -> dict:
        """The prompt of an ``h`` x ``w`` image, in the model's input coordinates: a box, or
        background points on the border (label 1: the segment to return is the background)."""
        import torch
        if self.prompt_mode == 'border_points':
            coords = torch.from_numpy(
                border_point_coords(h, w, self.border_points, self.border_margin)).to(
                    self._device)
            return dict(
                point_coords=self._transform.apply_coords_torch(coords, (h, w))[None],
                point_labels=torch.ones((1, len(coords)), dtype=torch.int64, device=self._device))
        mx, my = self.box_margin * w, self.box_margin * h
        box = torch.tensor([[mx, my, w - 1 - mx, h - 1 - my]],
                           dtype=torch.float32,
                           device=self._device)
        return dict(boxes=self._transform.apply_boxes_torch(box, (h, w)))

    def describe(self):
        info = dict(
            type=type(self).__name__,
            name=self.name,
            checkpoint=self.checkpoint,
            model_type=self.model_type,
            box_margin=self.box_margin)
        if self.dtype != 'float32':  # float32 builds keep their fingerprints
            info['dtype'] = self.dtype
        if self.prompt_mode != 'box':  # box-prompted builds keep their fingerprints
            info.update(
                prompt_mode=self.prompt_mode,
                border_points=self.border_points,
                border_margin=self.border_margin,
                background_index=self.background_index)
        return info
