from .compat import apply_compat, apply_lvis_numpy_compat, apply_torch_load_compat

__all__ = ['apply_compat', 'apply_lvis_numpy_compat', 'apply_torch_load_compat']
