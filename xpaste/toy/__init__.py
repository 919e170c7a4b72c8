"""The toy LVIS world: a small long-tailed instance-segmentation dataset of drawn objects.

Used by the demo, the tests and the toy experiment. Categories are shape x colour x texture
combinations (:func:`toy_categories`); :func:`make_toy_lvis` writes an LVIS-v1-format dataset
whose train split has rare, common and frequent categories; :func:`render_single_instance`
draws one object on a plain background, an oracle stand-in for a text-to-image model, and
:func:`render_gapped_instance` (:mod:`xpaste.toy.gap`) one that differs from the dataset in
style and background and is sometimes wrong. :mod:`xpaste.toy.clip` defines and trains a small
open_clip model on the toy world (the toy CLIP that scores a toy bank).
"""
from .categories import (TOY_COLOURS, TOY_SHAPES, TOY_TEXTURES, ToyCategory, max_toy_categories,
                         toy_categories)
from .gap import (DEFECTS, WRONG_DEFECTS, GappedImage, GapSettings, gap_tag, parse_gap_tag,
                  render_gapped_instance)
from .render import (ToyPose, cluttered_background, draw_instance, extent_for_coverage, paste,
                     plain_background, render_single_instance, sample_pose, textured_background)
from .world import frequency_from_image_count, make_toy_lvis, mask_to_polygons

__all__ = [
    'TOY_COLOURS', 'TOY_SHAPES', 'TOY_TEXTURES', 'ToyCategory', 'ToyPose', 'cluttered_background',
    'draw_instance', 'frequency_from_image_count', 'make_toy_lvis', 'mask_to_polygons',
    'max_toy_categories', 'paste', 'plain_background', 'render_single_instance', 'sample_pose',
    'toy_categories', 'DEFECTS', 'WRONG_DEFECTS', 'GappedImage', 'GapSettings', 'gap_tag',
    'parse_gap_tag', 'render_gapped_instance', 'extent_for_coverage', 'textured_background'
]
