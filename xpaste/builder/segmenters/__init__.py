"""Foreground segmenters of a bank build, behind one interface, and mask utilities.

A segmenter takes a list of BGR uint8 images of one class and returns one bool mask per image
(same height and width; an all-False mask when it finds nothing). Several segmenters can run on
the same images; the score stage then keeps, per image, the cut-out with the best CLIP score
(the X-Paste ensemble).

One module per segmenter:

- :class:`ClassicalSegmenter` (:mod:`.classical`) needs no weights: a colour model of the image
  border (k-means in Lab) seeds OpenCV's GrabCut at a reduced resolution. It suits the plain
  backgrounds that "a photo of a single ..." prompts give, and runs in the CPU worker pool.
- :class:`SAMSegmenter` (:mod:`.sam`): segment-anything prompted with a box over the image, or
  with points on the image border as background (DiverGen), batched on the GPU.
- :class:`CLIPSegSegmenter` (:mod:`.clipseg`): CLIPSeg from transformers, prompted with the
  class name.
- :class:`MMDetSegmenter` (:mod:`.detector`): any MMDetection instance segmentation model; the
  highest-scoring instance (optionally of the image's class) is the mask.

Segmenters are registered in :data:`SEGMENTERS` (:mod:`.base`); ``uses_gpu`` tells the pipeline
whether a segmenter runs in the main process (GPU) or in the CPU worker pool. Heavy libraries
are imported only by the segmenters that need them, when they load their model. Mask utilities
are in :mod:`.masks`.
"""
from .base import SEGMENTERS, BaseSegmenter, build_segmenters
from .classical import ClassicalSegmenter
from .clipseg import CLIPSegSegmenter
from .detector import MMDetSegmenter
from .masks import (cutout_on_white, fill_holes, largest_component, mask_box, pack_mask,
                    resize_mask, unpack_mask)
from .sam import SAMSegmenter

__all__ = [
    'SEGMENTERS', 'BaseSegmenter', 'build_segmenters', 'ClassicalSegmenter', 'SAMSegmenter',
    'CLIPSegSegmenter', 'MMDetSegmenter', 'largest_component', 'fill_holes', 'mask_box',
    'cutout_on_white', 'pack_mask', 'unpack_mask', 'resize_mask'
]
