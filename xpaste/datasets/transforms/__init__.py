"""Training transforms; importing registers them into mmdet's ``TRANSFORMS``."""
from .blend import BLEND_MODES, MASK_ALPHA_THR, blend_into
from .xpaste import SIZE_MODES, XPaste, resolve_class_names

__all__ = [
    'XPaste', 'blend_into', 'resolve_class_names', 'BLEND_MODES', 'MASK_ALPHA_THR', 'SIZE_MODES'
]
