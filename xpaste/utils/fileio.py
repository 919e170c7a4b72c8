"""Atomic file writes and tolerant reads, shared by the bank writer and the bank builder.

A killed process leaves either the old file or the whole new one, never a mix: every write goes
to a temporary file in the same folder and is renamed over the destination with ``os.replace``.
"""
import io
import json
import os
import os.path as osp
import zipfile
from typing import Any, Optional

import numpy as np


def atomic_write_bytes(path: str, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, flushed
    (and fsync-ed), then ``os.replace``. Parent directories are created.

    Args:
        path (str): Destination file.
        data (bytes): Content.
        fsync (bool): Force the content to disk before the rename, so that even a machine
            crash leaves the old file or the whole new one. Defaults to True.
    """
    path = os.fspath(path)
    dirname = osp.dirname(osp.abspath(path))
    os.makedirs(dirname, exist_ok=True)
    tmp = osp.join(dirname, f'.{osp.basename(path)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as strict json (NaN/Infinity refused: use None) to ``path`` atomically."""
    try:
        text = json.dumps(obj, indent=1, allow_nan=False, ensure_ascii=False)
    except ValueError as e:
        raise ValueError(f'{path}: cannot write non-finite numbers (NaN/Infinity) to json; '
                         f'use None instead ({e})') from e
    atomic_write_bytes(path, (text + '\n').encode('utf-8'))


def read_json(path: str) -> Any:
    """Read a json file; a missing or truncated file gives ``None``."""
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


#: Timestamp of every ``.npz`` member (the zip epoch), so equal arrays give equal files.
NPZ_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """What ``np.savez_compressed`` writes, without its wall-clock member timestamps and with
    pickling refused: the same arrays always give the same bytes (``np.load`` reads it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, mode='w', compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f'{name}.npy', date_time=NPZ_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, 'w', force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def atomic_write_npz(path: str, **arrays: np.ndarray) -> None:
    """Write arrays (no python objects) to a compressed ``.npz`` atomically; equal arrays give
    byte-identical files (:func:`npz_bytes`)."""
    atomic_write_bytes(path, npz_bytes(**arrays))


def read_npz(path: str) -> Optional[dict]:
    """Read an ``.npz`` written by :func:`atomic_write_npz` into a dict (pickle refused); a
    missing or unreadable file gives ``None``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (FileNotFoundError, OSError, ValueError, EOFError):
        return None
