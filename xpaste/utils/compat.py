"""Compatibility shims for the pinned toolchain, all in one place.

Each shim is small, scoped to the library that needs it, idempotent, and applied by
:func:`apply_compat` (called when :mod:`xpaste.datasets` is imported, i.e. by every config's
``custom_imports``, and by ``tools/train.py`` / ``tools/test.py``).

1. ``lvis`` 0.5.3 (used by mmdet's ``LVISMetric``) calls ``np.float``, removed in numpy 1.24.
   Instead of adding the alias to numpy for everybody, the ``np`` name *inside* ``lvis.eval`` is
   replaced by a view of numpy that also answers ``float``/``int``/``bool``/``object``.
2. torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and mmengine's
   checkpoint loader does not pass the argument. mmengine checkpoints carry a few non-tensor
   objects (the message hub's ``HistoryBuffer``, numpy arrays and scalars in ``meta``), so
   ``resume`` and ``load_from`` fail with ``UnpicklingError``. Rather than turning the safe loader
   off, exactly those types are added to torch's allow-list of safe globals. ``HistoryBuffer``
   also pickles its built-in statistics methods (``getattr(HistoryBuffer, 'mean')``, which no safe
   loader may allow); it is made to pickle only custom ones and to re-register the built-ins when
   loaded.
"""
import types

import numpy as np

_REMOVED_NUMPY_ALIASES = {'float': float, 'int': int, 'bool': bool, 'object': object}


class _NumpyWithAliases(types.ModuleType):
    """numpy, plus the scalar aliases numpy 1.24 removed (only where installed)."""

    def __init__(self):
        super().__init__('numpy')
        self.__dict__.update(_REMOVED_NUMPY_ALIASES)

    def __getattr__(self, name):
        return getattr(np, name)


def apply_lvis_numpy_compat() -> bool:
    """Let ``lvis.eval`` run with numpy >= 1.24. Returns True if lvis is installed."""
    try:
        import lvis.eval as lvis_eval
    except ImportError:
        return False
    if not isinstance(lvis_eval.np, _NumpyWithAliases):
        lvis_eval.np = _NumpyWithAliases()
    return True


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor types an mmengine training checkpoint contains."""
    from mmengine.logging import HistoryBuffer

    safe = [HistoryBuffer, np.ndarray, np.dtype, _numpy_reconstruct(), _numpy_scalar()]
    # numpy >= 1.25 pickles dtypes as instances of per-type dtype classes (np.dtypes.Float64DType).
    if hasattr(np, 'dtypes'):
        safe += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith('DType')]
    # numpy scalar types appear in logged values (np.float64 losses, np.int64 iteration counts).
    safe += [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
             np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
    return safe


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_scalar():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return scalar


_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _patch_history_buffer_pickling() -> None:
    from mmengine.logging import HistoryBuffer
    if getattr(HistoryBuffer, '_xpaste_safe_pickle', False):
        return
    mmengine_setstate = HistoryBuffer.__setstate__

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}
        custom = {k: v for k, v in self._statistics_methods.items()
                  if k not in _BUILTIN_STATISTICS}
        if custom:
            state['statistics_methods'] = custom
        return state

    def __setstate__(self, state: dict) -> None:
        mmengine_setstate(self, state)
        self._set_default_statistics()

    HistoryBuffer.__getstate__ = __getstate__
    HistoryBuffer.__setstate__ = __setstate__
    HistoryBuffer._xpaste_safe_pickle = True


def apply_torch_load_compat() -> None:
    """Allow mmengine checkpoints under torch's ``weights_only`` loader (torch >= 2.4)."""
    import torch
    _patch_history_buffer_pickling()
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # older torch: weights_only is off by default
        return
    add_safe_globals(mmengine_checkpoint_safe_globals())


def apply_compat() -> None:
    """Apply every shim of this module (idempotent)."""
    apply_lvis_numpy_compat()
    apply_torch_load_compat()
