"""CLIPSeg (transformers) as a segmenter, prompted with the class name."""
from typing import Optional

import cv2
import numpy as np

from xpaste.utils.checks import check_number
from ..hub import (check_model_source, dtype_kwargs, hub_id_note, resolve_device, resolve_dtype,
                   torch_dtype)
from .base import SEGMENTERS, BaseSegmenter


@SEGMENTERS.register_module()
class CLIPSegSegmenter(BaseSegmenter):
    """CLIPSeg (transformers ``CLIPSegForImageSegmentation``), prompted with the class name.

    Args:
        model (str): Hub id or local path, e.g. ``'CIDAS/clipseg-rd64-refined'``.
        prompt (str): Text prompt template over ``{name}``. Defaults to ``'a {name}'``.
        threshold (float): Probability threshold of the mask. Defaults to 0.4.
        batch_size (int): Images per forward. Defaults to 16.
        dtype (str): ``'float32'``, ``'float16'`` or ``'bfloat16'``; on the CPU bfloat16 runs
            and float16 falls back to float32 (with a warning). Defaults to ``'float32'``.
        device (str): Defaults to ``'auto'``.
        name (str, optional): Defaults to ``'clipseg'``.
        built_model (tuple, optional): An already built ``(model, processor)`` (benchmarks
            with random weights, tests); ``model`` is then only recorded. Defaults to None.
    """

    default_name = 'clipseg'
    uses_gpu = True

    def __init__(self,
                 model: str = 'CIDAS/clipseg-rd64-refined',
                 prompt: str = 'a {name}',
                 threshold: float = 0.4,
                 batch_size: int = 16,
                 dtype: str = 'float32',
                 device: str = 'auto',
                 name: Optional[str] = None,
                 built_model: Optional[tuple] = None):
        super().__init__(name)
        check_number('CLIPSegSegmenter.threshold', threshold, 0, 1, lo_open=True, hi_open=True)
        if '{name}' not in prompt:
            raise ValueError(f'CLIPSegSegmenter.prompt must contain "{{name}}", got {prompt!r}')
        torch_dtype(dtype)
        self.model_path = model
        self.prompt = prompt
        self.threshold = float(threshold)
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.local_rank = 0
        self.model = None
        self.built_model = built_model

    def check(self) -> None:
        if self.built_model is None:
            check_model_source(self.model_path, f'segmenter {self.name!r} model', kind='dir')

    def setup(self) -> None:
        if self.model is not None:
            return
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
        self._device = resolve_device(self.device, self.local_rank, f'segmenter {self.name!r}')
        dtype = resolve_dtype(
            self.dtype,
            self._device,
            f'segmenter {self.name!r}',
            cpu_dtypes=('float32', 'bfloat16'))
        if self.built_model is not None:
            model, self.processor = self.built_model
            self.model = model.to(self._device, dtype).eval()
            return
        path = check_model_source(self.model_path, f'segmenter {self.name!r} model', kind='dir')
        try:
            self.processor = CLIPSegProcessor.from_pretrained(path)
            model = CLIPSegForImageSegmentation.from_pretrained(
                path, **dtype_kwargs('transformers', dtype))
        except (OSError, ValueError) as e:
            raise OSError(f'segmenter {self.name!r}: cannot load CLIPSeg {path!r} '
                          f'({type(e).__name__}: {e}){hub_id_note(path)}') from e
        self.model = model.to(self._device).eval()

    def segment(self, images, category):
        import torch
        from ..prompts import display_name
        self.setup()
        text = self.prompt.format(name=display_name(category['name']))
        masks = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                np.ascontiguousarray(im[..., ::-1]) for im in images[start:start + self.batch_size]
            ]
            inputs = self.processor(
                text=[text] * len(batch), images=batch, padding=True, return_tensors='pt')
            inputs = {k: v.to(self._device) for k, v in inputs.items()}
            inputs['pixel_values'] = inputs['pixel_values'].to(self.model.dtype)
            with torch.inference_mode():
                logits = self.model(**inputs).logits
            logits = logits.reshape(len(batch), *logits.shape[-2:]).float()
            probs = torch.sigmoid(logits).cpu().numpy()
            for prob, image in zip(probs, batch):
                h, w = image.shape[:2]
                prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
                masks.append(prob >= self.threshold)
        return masks

    def describe(self):
        return dict(
            type=type(self).__name__,
            name=self.name,
            model=self.model_path,
            prompt=self.prompt,
            threshold=self.threshold,
            dtype=self.dtype)
