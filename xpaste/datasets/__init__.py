"""Datasets, the instance bank reader and transforms; importing registers them into mmdet."""
from xpaste.utils.compat import apply_compat

from .instance_bank import InstanceBank, build_instance_bank  # noqa: F401
from .lvis import LVISV1JsonDataset, check_lvis_annotations, load_lvis_annotations
from .transforms import XPaste  # noqa: F401

apply_compat()

__all__ = ['LVISV1JsonDataset', 'check_lvis_annotations', 'load_lvis_annotations']
