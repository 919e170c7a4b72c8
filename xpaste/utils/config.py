"""Config loading shared by the tools: one place for path checks, ``--cfg-options`` and work_dir."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Load an mmengine config, merge ``cfg_options`` and resolve ``work_dir``.

    work_dir priority, as in mmdet: ``work_dir`` argument > ``work_dir`` in the config >
    ``./work_dirs/<config file name without .py>``.

    Raises:
        FileNotFoundError: the config file does not exist (the message names it).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path!r}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg
