"""Where the bank builder's models come from: local paths, hub ids, devices.

Every model of a build (generator, segmenters, CLIP) is named by a local path or a hub id. Paths
are checked when the build is set up, before any work starts, so a typo fails in a second with
the path in the message instead of after hours of generation.
"""
import os
import os.path as osp
import re
from typing import Optional

_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$')
_WEIGHT_SUFFIXES = ('.safetensors', '.ckpt', '.pt', '.pth', '.bin', '.pkl')


def looks_like_path(value: str) -> bool:
    """Whether ``value`` is meant as a local path rather than a hub id.

    It is a path when it exists, is absolute or starts with ``.``/``~``, has more than one
    ``/``, or ends with a weight-file suffix; ``org/name`` and ``name`` are hub ids.
    """
    if osp.exists(value):
        return True
    if value.startswith(('/', '.', '~')) or osp.isabs(value):
        return True
    if value.lower().endswith(_WEIGHT_SUFFIXES):
        return True
    return not _HUB_ID.match(value)


def check_model_source(value: Optional[str],
                       what: str,
                       allow_hub_id: bool = True,
                       kind: str = 'any') -> Optional[str]:
    """Check a model path or hub id before loading it.

    Args:
        value (str, optional): A local path or a hub id. None passes through.
        what (str): The setting, named in messages (e.g. ``'source.model'``).
        allow_hub_id (bool): Whether a hub id is acceptable. Defaults to True.
        kind (str): ``'file'``, ``'dir'`` or ``'any'`` for a local path. Defaults to ``'any'``.

    Returns:
        str | None: ``value`` with ``~`` expanded when it is a path.

    Raises:
        FileNotFoundError: a local path that does not exist or is of the wrong kind.
        ValueError: a hub id where only a path is accepted, or an empty value.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{what} must be a local path or a model id, got {value!r}')
    if looks_like_path(value) or not allow_hub_id:
        path = osp.expanduser(value)
        if not osp.exists(path):
            raise FileNotFoundError(f'{what}: model path does not exist: {value!r}')
        if kind == 'file' and not osp.isfile(path):
            raise FileNotFoundError(f'{what}: expected a checkpoint file, got directory {value!r}')
        if kind == 'dir' and not osp.isdir(path):
            raise FileNotFoundError(f'{what}: expected a model directory, got file {value!r}')
        return path
    return value


def resolve_device(device: Optional[str] = 'auto', local_rank: int = 0) -> str:
    """The torch device of this rank.

    ``'auto'`` (or None) gives ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``'cpu'``;
    ``'cuda'`` gives ``cuda:<LOCAL_RANK>``; anything else is returned as it is.
    """
    if device in (None, 'auto'):
        import torch
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cuda':
        return f'cuda:{local_rank}'
    return device


def local_rank_from_env() -> int:
    """``LOCAL_RANK`` (torchrun) or ``SLURM_LOCALID`` (srun), 0 when neither is set."""
    for key in ('LOCAL_RANK', 'SLURM_LOCALID'):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def torch_dtype(name: str):
    """``'float16'``/``'fp16'``/``'bfloat16'``/``'float32'`` -> the torch dtype.

    Raises:
        ValueError: an unknown name.
    """
    import torch
    table = {
        'float16': torch.float16,
        'fp16': torch.float16,
        'half': torch.float16,
        'bfloat16': torch.bfloat16,
        'bf16': torch.bfloat16,
        'float32': torch.float32,
        'fp32': torch.float32,
        'float': torch.float32,
    }
    if name not in table:
        raise ValueError(f'dtype must be one of {sorted(table)}, got {name!r}')
    return table[name]


def dtype_kwargs(library: str, dtype) -> dict:
    """The ``from_pretrained`` keyword for a torch dtype: ``dtype`` in recent diffusers (0.36+)
    and transformers (4.56+), ``torch_dtype`` before (newer releases deprecate it)."""
    if library == 'diffusers':
        from diffusers.utils import deprecation_utils
        new = hasattr(deprecation_utils, '_TORCH_DTYPE_DEPRECATION_MESSAGE')
    elif library == 'transformers':
        import transformers
        from packaging.version import Version
        new = Version(transformers.__version__) >= Version('4.56')
    else:
        raise ValueError(f"library must be 'diffusers' or 'transformers', got {library!r}")
    return {'dtype' if new else 'torch_dtype': dtype}
