"""Where the bank builder's models come from, and where they run: local paths, hub ids,
devices (:func:`resolve_device`) and dtypes (:func:`resolve_dtype`).

Every model of a build (generator, segmenters, CLIP) is named by a local path or a hub id. Paths
are checked when the build is set up, before any work starts, so a typo fails in a second with
the path in the message instead of after hours of generation.
"""
import logging
import os
import os.path as osp
import re
from typing import Optional, Sequence

from mmengine.logging import print_log

from xpaste.utils.checks import check_choice

_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$')
_WEIGHT_SUFFIXES = ('.safetensors', '.ckpt', '.pt', '.pth', '.bin', '.pkl')
#: Suffixes of single-file checkpoints of a whole diffusion pipeline (diffusers'
#: ``from_single_file``).
SINGLE_FILE_SUFFIXES = ('.safetensors', '.ckpt', '.pt', '.pth', '.bin')


def looks_like_path(value: str) -> bool:
    """Whether ``value`` is meant as a local path rather than a hub id.

    It is a path when it exists, is absolute or starts with ``.``/``~``, has more than one
    ``/``, or ends with a weight-file suffix; otherwise ``org/name`` and ``name`` are hub ids.
    So a relative ``models/sd15`` is a local folder when it exists (from the current
    directory) and a hub id when it does not; a failed hub load then says why
    (:func:`hub_id_note`).
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


#: Components already warned that ``device='auto'`` runs them on the CPU.
_WARNED_CPU: set = set()


def resolve_device(device: Optional[str] = 'auto', local_rank: int = 0, what: str = 'model') -> str:
    """The torch device of a component on this rank.

    - ``'auto'`` (or None): as ``'cuda'`` when CUDA is available, else ``'cpu'``, with a
      warning (once per component) that the component runs on the CPU.
    - ``'cuda'``: the GPU of this rank: ``cuda:<local_rank>`` when ``local_rank`` is below the
      number of visible devices; ``cuda:0`` when a single device is visible (each rank sees only
      its own GPU, e.g. ``srun --gpus-per-task=1`` or a per-rank ``CUDA_VISIBLE_DEVICES``).
    - ``'cuda:N'``: device ``N`` of the visible ones, whatever the rank.
    - ``'cpu'``: the CPU; anything else (e.g. ``'mps'``) is passed to torch as it is.

    Args:
        device (str, optional): The setting. Defaults to ``'auto'``.
        local_rank (int): Rank within the node (:func:`local_rank_from_env`). Defaults to 0.
        what (str): The component, named in messages (e.g. ``'source'``). Defaults to
            ``'model'``.

    Returns:
        str: ``'cuda:<index>'``, ``'cpu'`` or ``device`` as given.

    Raises:
        RuntimeError: ``'cuda'``/``'cuda:N'`` without CUDA, ``N`` not a visible device, or
            several devices visible and ``local_rank`` not among them.
    """
    import torch
    if device in (None, 'auto'):
        if not torch.cuda.is_available():
            if what not in _WARNED_CPU:
                _WARNED_CPU.add(what)
                print_log(
                    f"{what}: device='auto' but CUDA is not available (torch "
                    f'{torch.__version__}), so it runs on the CPU, which is slow; set '
                    f"device='cpu' to make this explicit",
                    logger='current',
                    level=logging.WARNING)
            return 'cpu'
        device = 'cuda'
    if not isinstance(device, str) or not (device == 'cuda' or device.startswith('cuda:')):
        return device
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    where = '' if visible is None else f' (CUDA_VISIBLE_DEVICES={visible!r})'
    if not torch.cuda.is_available():
        raise RuntimeError(f'{what}: device={device!r} but CUDA is not available (torch '
                           f"{torch.__version__}){where}; use device='cpu' or 'auto'")
    count = torch.cuda.device_count()
    if device == 'cuda':
        if local_rank < count:
            return f'cuda:{local_rank}'
        if count == 1:
            return 'cuda:0'
        raise RuntimeError(f"{what}: device='cuda' on local rank {local_rank}, but only {count} "
                           f'CUDA devices are visible{where}: start at most {count} ranks per '
                           "node, give each rank its own GPU, or set device='cuda:N'")
    index = device.split(':', 1)[1]
    if not index.isdigit() or int(index) >= count:
        raise RuntimeError(f'{what}: device={device!r}, but the visible CUDA devices are '
                           f'cuda:0..cuda:{count - 1}{where}')
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
    check_choice('dtype', name, sorted(table))
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


def resolve_dtype(name: str,
                  device: str,
                  what: str = 'model',
                  cpu_dtypes: Sequence[str] = ('float32', )):
    """The torch dtype a component runs in on ``device``.

    On the CPU a dtype not in ``cpu_dtypes`` (float16: slow or unsupported there) falls back to
    float32 with a warning naming the component.

    Args:
        name (str): A :func:`torch_dtype` name.
        device (str): From :func:`resolve_device`.
        what (str): The component, named in the warning. Defaults to ``'model'``.
        cpu_dtypes (Sequence[str]): Dtypes the component runs in on the CPU.
            Defaults to ``('float32',)``.
    """
    import torch
    dtype = torch_dtype(name)
    if str(device).startswith('cpu') and dtype not in {torch_dtype(n) for n in cpu_dtypes}:
        print_log(
            f'{what}: dtype {name} on the CPU is slow or unsupported; using float32',
            logger='current',
            level=logging.WARNING)
        return torch.float32
    return dtype


def hub_id_note(value) -> str:
    """Why ``value`` was loaded as a hub id, for the message of a failed load: a relative
    ``org/name`` names a local model only when that directory exists."""
    if not isinstance(value, str) or looks_like_path(value) or '/' not in value:
        return ''
    return (f'; {value!r} was taken as a hub id because no local directory '
            f'{osp.abspath(value)!r} exists (for a local model give an existing path, e.g. '
            f"'./{value}')")


def load_error(what: str, value: str, error: Exception) -> OSError:
    """The error of a failed model load: names the setting, the path or hub id, the cause and,
    for a hub id, why it was taken as one (:func:`hub_id_note`)."""
    return OSError(f'{what}: cannot load {value!r} ({type(error).__name__}: {error})'
                   f'{hub_id_note(value)}')
