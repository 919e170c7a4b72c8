"""Training transforms; importing registers them into mmdet's ``TRANSFORMS``."""
from .bank_labels import resolve_class_names
from .blend import BLEND_MODES, MASK_ALPHA_THR, blend_into
from .paste_geometry import SIZE_MODES
from .xpaste import XPaste

__all__ = [
    'XPaste', 'blend_into', 'resolve_class_names', 'BLEND_MODES', 'MASK_ALPHA_THR', 'SIZE_MODES'
]
