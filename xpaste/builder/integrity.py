"""Cheap content checks of a build's files, for the done checks of
:class:`~xpaste.builder.layout.WorkLayout`.

A killed process or a full disk can leave a file that exists but is cut short. Each check here
reads a few bytes (a header, a trailer, a zip directory) instead of decoding the whole file, and
returns what is wrong with it ('' when nothing is), so that the unit that made it is redone
instead of crashing every later run.
"""
import json
import os
import os.path as osp
import zipfile
import zlib
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .dist import json_from_npz

#: Errors of reading a damaged file (truncated zip, bad header, bad json).
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error,
               Image.DecompressionBombError)

#: Last bytes of a complete file, by format (the PNG ``IEND`` chunk, the JPEG EOI marker).
_TRAILERS = {'PNG': b'\x00\x00\x00\x00IEND\xaeB`\x82', 'JPEG': b'\xff\xd9'}


def json_problem(path: str) -> tuple[Optional[dict], str]:
    """Read a json record.

    Returns:
        tuple: ``(record, problem)``: the record (a dict) and ``''``; ``(None, 'missing')``
        when there is no file; ``(None, why)`` when it cannot be read.
    """
    try:
        with open(path, 'rb') as f:
            rec = json.loads(f.read())
    except FileNotFoundError:
        return None, 'missing'
    except (OSError, ValueError) as e:
        return None, f'unreadable json ({type(e).__name__}: {e})'
    if not isinstance(rec, dict):
        return None, f'not a json object ({type(rec).__name__})'
    return rec, ''


def npz_problem(path: str, keys: Sequence[str] = ()) -> tuple[Optional[dict], str]:
    """Open an ``.npz`` output, check that it holds ``keys`` and read its ``meta`` record.

    Only the zip directory and the small ``meta`` array are read, not the other arrays.

    Returns:
        tuple: ``(meta, '')``, ``(None, 'missing')`` or ``(None, why)``.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            absent = [k for k in ('meta', *keys) if k not in data.files]
            if absent:
                return None, f'arrays {absent} are missing'
            meta = json_from_npz(data['meta'])
    except FileNotFoundError:
        return None, 'missing'
    except READ_ERRORS as e:
        return None, f'unreadable npz ({type(e).__name__}: {e})'
    if not isinstance(meta, dict):
        return None, 'its meta record is not a json object'
    return meta, ''


def zip_problem(path: str) -> str:
    """What is wrong with a zip file (an ``.npz``) without reading its members: ``''``,
    ``'missing'`` or why its directory cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            zf.namelist()
    except FileNotFoundError:
        return 'missing'
    except READ_ERRORS as e:
        return f'unreadable zip ({type(e).__name__}: {e})'
    return ''


def image_problem(path: str, size: Optional[tuple[int, int]] = None, complete: bool = False) -> str:
    """What is wrong with an image file, from its header (and trailer), without decoding it.

    Args:
        path (str): The image.
        size (tuple[int, int], optional): ``(height, width)`` the header must give.
            Defaults to None (not checked).
        complete (bool): Also require the end of the file: the PNG ``IEND`` chunk, the JPEG
            end marker, the WebP (RIFF) length. For files written by the build (a file from
            elsewhere may carry bytes after its end marker). Defaults to False.

    Returns:
        str: ``''`` when the file looks whole, ``'missing'``, or what is wrong.
    """
    try:
        with Image.open(path) as im:
            fmt, (width, height) = im.format, im.size
        if size is not None and (height, width) != tuple(size):
            return f'its header gives {width}x{height}, the record {size[1]}x{size[0]}'
        if complete:
            return _trailer_problem(path, fmt)
    except FileNotFoundError:
        return 'missing'
    except READ_ERRORS as e:  # PIL.UnidentifiedImageError is an OSError
        return f'unreadable image header ({type(e).__name__}: {e})'
    return ''


def _trailer_problem(path: str, fmt: str) -> str:
    """Whether an image file of format ``fmt`` ends where its format says it does."""
    nbytes = os.path.getsize(path)
    with open(path, 'rb') as f:
        if fmt == 'WEBP':
            f.seek(4)
            riff = int.from_bytes(f.read(4), 'little') + 8
            riff += riff % 2  # RIFF chunks are padded to an even size
            return '' if nbytes >= riff else (f'truncated: {nbytes} bytes, its RIFF header '
                                              f'says {riff}')
        trailer = _TRAILERS.get(fmt)
        if trailer is None:
            return ''
        f.seek(max(0, nbytes - len(trailer)))
        if f.read() != trailer:
            return f'truncated: no {fmt} end marker'
    return ''


def shards_problem(part_dir: str, shards: Sequence[dict]) -> str:
    """Whether every shard of a part (``[{'file', 'bytes'}]``) exists with at least its
    recorded size."""
    for shard in shards:
        path = osp.join(part_dir, shard['file'])
        try:
            got = os.path.getsize(path)
        except OSError:
            return f'shard {path} is missing'
        if got < shard['bytes']:
            return f'shard {path} is {got} bytes, {shard["bytes"]} were written (truncated)'
    return ''
