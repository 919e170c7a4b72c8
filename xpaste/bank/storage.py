"""On-disk format of an instance bank: writer, merge (``finalize_bank``) and low-level reader.

A bank is a directory (all paths inside it are relative to its root)::

    <root>/manifest.json                 schema version, categories, parts, index, build info
    <root>/index/<column>.npy            merged index, one numpy column per field (mmap friendly)
    <root>/meta/<table>.json             string tables (segmenter names, sources, prompts)
    <root>/parts/<part>/part.json        commit record of one writer (written last, atomically)
    <root>/parts/<part>/index-NNNNN.npz  that part's index columns (part-local string ids)
    <root>/parts/<part>/shard-NNNNN.bin  concatenated encoded BGRA crops (WebP or PNG)

Each process appends to its own part with :class:`BankWriter`; :func:`finalize_bank` merges the
committed parts (sorted by name) into ``index/`` and ``meta/`` and writes ``manifest.json``.
:class:`BankReader` opens a finalized bank read-only. No pickle is used anywhere. The full
specification is ``docs/bank_format.md``.
"""
import io
import json
import os
import os.path as osp
import re
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata

import cv2
import numpy as np

from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json

SCHEMA_VERSION = 1
BANK_FORMAT = 'xpaste-bank'
PART_FORMAT = 'xpaste-bank-part'
MANIFEST_FILE = 'manifest.json'
PART_FILE = 'part.json'
INDEX_DIR = 'index'
META_DIR = 'meta'
PARTS_DIR = 'parts'

#: Columns of the index (schema version 1), in storage order, with their dtypes.
INDEX_COLUMNS: dict[str, np.dtype] = {
    'category': np.dtype(np.int32),  # position in manifest['categories']
    'part': np.dtype(np.uint16),  # position in manifest['parts']
    'shard': np.dtype(np.uint16),  # position in manifest['parts'][part]['shards']
    'offset': np.dtype(np.uint64),  # byte offset of the encoded crop in its shard
    'length': np.dtype(np.uint32),  # byte length of the encoded crop
    'height': np.dtype(np.uint16),  # stored crop height (after crop and max_side)
    'width': np.dtype(np.uint16),  # stored crop width
    'area': np.dtype(np.uint32),  # pixels with alpha >= 128 in the stored crop
    'clip_score': np.dtype(np.float32),  # CLIP score of the cut-out, NaN if unknown
    'image_score': np.dtype(np.float32),  # CLIP score of the whole source image, NaN if unknown
    'segmenter': np.dtype(np.uint8),  # id in the 'segmenter' string table
    'seed': np.dtype(np.int64),  # generation seed, -1 if not generated
    'prompt_id': np.dtype(np.int32),  # id in the 'prompt' string table
    'source_id': np.dtype(np.int32),  # id in the 'source' string table
}

#: String tables and the index column holding their ids.
STRING_TABLES: dict[str, str] = {
    'segmenter': 'segmenter',
    'source': 'source_id',
    'prompt': 'prompt_id',
}

#: Supported encodings of the stored crops and their OpenCV extension.
IMAGE_FORMATS: dict[str, str] = {'webp': '.webp', 'png': '.png'}

_MANIFEST_FIELDS = ('format', 'schema_version', 'num_instances', 'categories', 'index',
                    'strings', 'parts')
_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*$')
_UINT16_MAX = np.iinfo(np.uint16).max
_STRING_ID_MAX = {'segmenter': np.iinfo(np.uint8).max, 'source': np.iinfo(np.int32).max,
                  'prompt': np.iinfo(np.int32).max}


# --------------------------------------------------------------------------------------------
# small helpers: atomic writes, paths, validation
# --------------------------------------------------------------------------------------------
def _atomic_save_npy(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _read_json(path: str, what: str):
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from e


def safe_join(root: str, rel: str, *, what: str = 'path') -> str:
    """Join a bank-relative path to ``root``, refusing absolute paths and ``..`` escapes.

    Args:
        root (str): Bank root.
        rel (str): Path relative to the root, as stored in a manifest.
        what (str): Name of the field in error messages. Defaults to ``'path'``.

    Returns:
        str: ``root/rel``.
    """
    if not isinstance(rel, str) or not rel:
        raise ValueError(f'{osp.join(root, MANIFEST_FILE)}: {what} must be a non-empty relative '
                         f'path string, got {rel!r}')
    norm = osp.normpath(rel)
    if (osp.isabs(rel) or rel.startswith(('/', '\\')) or norm == '..'
            or norm.startswith('..' + os.sep) or norm.startswith('../')):
        raise ValueError(f'{osp.join(root, MANIFEST_FILE)}: {what} {rel!r} escapes the bank root '
                         f'{root!r} (paths inside a bank must be relative and stay inside it)')
    return osp.join(root, norm)


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in ('.', '..'):
        raise ValueError(f'{what} must match {_NAME_RE.pattern} (letters, digits, ".", "_", "-"), '
                         f'got {name!r}')
    return name


def validate_categories(categories, where: str = 'categories') -> list[dict]:
    """Check a category list: non-empty dicts with a unique ``str`` name and a unique ``int`` id.

    Args:
        categories (list[dict]): ``[{'id': int, 'name': str, ...}, ...]``.
        where (str): Prefix of error messages (file and field). Defaults to ``'categories'``.

    Returns:
        list[dict]: Plain-dict copies, in the given order.
    """
    if not isinstance(categories, Sequence) or isinstance(categories, (str, bytes)):
        raise TypeError(f'{where}: expected a list of {{"id", "name"}} dicts, '
                        f'got {type(categories).__name__}')
    out, names, ids = [], set(), set()
    for i, cat in enumerate(categories):
        if not isinstance(cat, Mapping):
            raise TypeError(f'{where}[{i}]: expected a dict, got {cat!r}')
        for key in ('id', 'name'):
            if key not in cat:
                raise ValueError(f'{where}[{i}]: missing field {key!r} in {dict(cat)!r}')
        name, cid = cat['name'], cat['id']
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}[{i}].name: expected a non-empty string, got {name!r}')
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)):
            raise ValueError(f'{where}[{i}].id: expected an int, got {cid!r}')
        if name in names:
            raise ValueError(f'{where}[{i}].name: duplicate category name {name!r}')
        if int(cid) in ids:
            raise ValueError(f'{where}[{i}].id: duplicate category id {int(cid)!r}')
        names.add(name)
        ids.add(int(cid))
        out.append({**dict(cat), 'id': int(cid)})
    return out


def package_versions(names: Sequence[str] = ('xpaste', 'numpy', 'opencv-python-headless',
                                             'opencv-python', 'pycocotools', 'torch',
                                             'diffusers', 'transformers', 'open_clip_torch',
                                             'segment_anything')) -> dict[str, str]:
    """Versions of the installed distributions among ``names`` (absent ones are left out).

    Args:
        names (Sequence[str]): Distribution names. Defaults to the bank-relevant packages.

    Returns:
        dict[str, str]: ``{name: version}``.
    """
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if 'xpaste' not in out and 'xpaste' in names:
        from xpaste.version import __version__
        out['xpaste'] = __version__
    return out


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
def encode_bgra(bgra: np.ndarray, image_format: str = 'webp', quality: int = 95) -> bytes:
    """Encode an HxWx4 BGRA uint8 crop.

    Args:
        bgra (np.ndarray): HxWx4 uint8 image, alpha in channel 3.
        image_format (str): ``'webp'`` (lossy colour, lossless alpha) or ``'png'`` (lossless).
            Defaults to ``'webp'``.
        quality (int): WebP quality 1..100 (ignored for PNG). Defaults to 95.

    Returns:
        bytes: Encoded image.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f'image_format must be one of {sorted(IMAGE_FORMATS)}, '
                         f'got {image_format!r}')
    if image_format == 'webp':
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(IMAGE_FORMATS[image_format], bgra, params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {bgra.shape} crop as {image_format!r}')
    return buf.tobytes()


def decode_bgra(data: bytes) -> np.ndarray:
    """Decode an encoded crop to HxWx4 BGRA uint8 (opaque images get alpha 255).

    Args:
        data (bytes): Encoded image (any format OpenCV reads).

    Returns:
        np.ndarray: HxWx4 uint8.

    Raises:
        ValueError: If the bytes cannot be decoded to an 8-bit image.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ValueError('cannot decode an empty byte string')
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise ValueError(f'OpenCV failed to decode {buf.size} bytes: {e}') from e
    if img is None:
        raise ValueError(f'OpenCV could not decode {buf.size} bytes (not a WebP/PNG image?)')
    if img.dtype != np.uint8:
        raise ValueError(f'decoded image has dtype {img.dtype}, expected uint8')
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    if img.shape[2] != 4:
        raise ValueError(f'decoded image has {img.shape[2]} channels, expected 3 or 4')
    return img


def _mask_to_alpha(mask: np.ndarray, shape: tuple) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f'mask must have the image shape {shape}, got {mask.shape}')
    if mask.dtype == bool:
        return mask.astype(np.uint8) * 255
    if np.issubdtype(mask.dtype, np.floating):
        if mask.size and (np.nanmin(mask) < 0 or np.nanmax(mask) > 1):
            raise ValueError('a float mask must lie in [0, 1], got range '
                             f'[{np.nanmin(mask)}, {np.nanmax(mask)}]')
        return np.rint(np.nan_to_num(mask) * 255).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.integer):
        lo, hi = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f'an integer mask must lie in [0, 255], got range [{lo}, {hi}]')
        return (mask.astype(np.uint8) * 255) if hi <= 1 else mask.astype(np.uint8)
    raise TypeError(f'mask must be bool, integer or float, got dtype {mask.dtype}')


def resize_bgra(bgra: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGRA crop with premultiplied alpha (no colour bleeding from transparent pixels).

    Args:
        bgra (np.ndarray): HxWx4 uint8.
        size (tuple[int, int]): Output ``(width, height)``.

    Returns:
        np.ndarray: Resized HxWx4 uint8 (``INTER_AREA`` when shrinking, else ``INTER_LINEAR``).
    """
    h, w = bgra.shape[:2]
    interp = cv2.INTER_AREA if size[0] <= w and size[1] <= h else cv2.INTER_LINEAR
    f = bgra.astype(np.float32)
    alpha = f[..., 3:4]
    f[..., :3] *= alpha / 255.0
    r = cv2.resize(f, size, interpolation=interp)
    if r.ndim == 2:  # 1-pixel outputs keep their channel axis
        r = r.reshape(size[1], size[0], 4)
    a = r[..., 3:4]
    r[..., :3] = np.where(a > 0, r[..., :3] * 255.0 / np.maximum(a, 1e-6), 0.0)
    return np.clip(np.rint(r), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# parts: commit record, loading, listing
# --------------------------------------------------------------------------------------------
def _part_dir(root: str, part: str) -> str:
    return osp.join(root, PARTS_DIR, part)


def empty_index(n: int) -> dict[str, np.ndarray]:
    """Zero-filled index columns for ``n`` instances (scores NaN, seed -1), in schema dtypes.

    Args:
        n (int): Number of rows.

    Returns:
        dict[str, np.ndarray]: One array per :data:`INDEX_COLUMNS` entry.
    """
    cols = {k: np.zeros(n, dtype=dt) for k, dt in INDEX_COLUMNS.items()}
    cols['clip_score'][:] = np.nan
    cols['image_score'][:] = np.nan
    cols['seed'][:] = -1
    return cols


def index_nbytes(columns: Mapping[str, np.ndarray]) -> int:
    """Bytes held by index columns (sum of ``nbytes``); divide by the row count for bytes/row.

    Args:
        columns (Mapping[str, np.ndarray]): Index columns, e.g. ``BankReader.columns``.

    Returns:
        int: Total size in bytes.
    """
    return int(sum(np.asarray(c).nbytes for c in columns.values()))


def commit_part(root: str, part: str, categories: list[dict], columns: Mapping[str, np.ndarray],
                shards: Sequence[Mapping], strings: Mapping[str, Sequence[str]] | None = None,
                image_format: str = 'webp', info: dict | None = None) -> dict:
    """Atomically commit one part from index columns whose shards are already on disk.

    This is the single commit path: :meth:`BankWriter.close` calls it, and benchmarks can build
    large synthetic parts with it directly. The index goes to a new ``index-NNNNN.npz`` and
    ``part.json`` (written last with ``os.replace``) points at it, so a crash leaves the previous
    commit intact; older index files are removed afterwards.

    Args:
        root (str): Bank root.
        part (str): Part name (letters, digits, ``._-``).
        categories (list[dict]): Bank categories (``id`` and ``name``).
        columns (Mapping[str, np.ndarray]): Every :data:`INDEX_COLUMNS` column except ``part``,
            equal lengths; ``shard`` indexes ``shards``, string ids index ``strings``.
        shards (Sequence[Mapping]): ``[{'file': 'shard-00000.bin', 'bytes': int}, ...]``, files
            relative to the part folder.
        strings (Mapping[str, Sequence[str]], optional): The part's string tables
            (:data:`STRING_TABLES`). Defaults to one empty string per table.
        image_format (str): Encoding of the crops. Defaults to ``'webp'``.
        info (dict, optional): Free-form JSON info about this part (rank, host, ...).

    Returns:
        dict: The written ``part.json`` content.
    """
    root = os.fspath(root)
    _check_name(part, 'part')
    categories = validate_categories(categories, f'part {part!r}: categories')
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f'image_format must be one of {sorted(IMAGE_FORMATS)}, '
                         f'got {image_format!r}')
    strings = {t: list((strings or {}).get(t, [''])) for t in STRING_TABLES}
    cols = {}
    n = None
    for name, dtype in INDEX_COLUMNS.items():
        if name == 'part':
            continue
        if name not in columns:
            raise ValueError(f'part {part!r}: missing index column {name!r}')
        col = np.ascontiguousarray(columns[name], dtype=dtype)
        if col.ndim != 1 or (n is not None and len(col) != n):
            raise ValueError(f'part {part!r}: column {name!r} has shape {col.shape}, '
                             f'expected ({n},)')
        n = len(col)
        cols[name] = col
    shards = [{'file': _check_name(s['file'], 'shard file'), 'bytes': int(s['bytes'])}
              for s in shards]
    if len(shards) > _UINT16_MAX:
        raise ValueError(f'part {part!r}: {len(shards)} shards exceed the limit {_UINT16_MAX}; '
                         'raise shard_bytes')
    limits = {'shard': len(shards), 'category': len(categories),
              **{col: len(strings[t]) for t, col in STRING_TABLES.items()}}
    for col, limit in limits.items():
        if n and (int(cols[col].min()) < 0 or int(cols[col].max()) >= limit):
            raise ValueError(f'part {part!r}: column {col!r} has values in '
                             f'[{int(cols[col].min())}, {int(cols[col].max())}], '
                             f'expected [0, {limit})')

    pdir = _part_dir(root, part)
    os.makedirs(pdir, exist_ok=True)
    prev = _read_part_json(pdir) if osp.isfile(osp.join(pdir, PART_FILE)) else None
    generation = (prev['generation'] + 1) if prev else 1
    index_file = f'index-{generation:05d}.npz'
    buf = io.BytesIO()
    np.savez_compressed(buf, **cols)
    atomic_write_bytes(osp.join(pdir, index_file), buf.getvalue())
    record = {
        'format': PART_FORMAT,
        'schema_version': SCHEMA_VERSION,
        'name': part,
        'generation': generation,
        'num_instances': int(n or 0),
        'image_format': image_format,
        'index_file': index_file,
        'shards': shards,
        'categories': categories,
        'strings': strings,
        'info': dict(info or {}),
    }
    atomic_write_json(osp.join(pdir, PART_FILE), record)
    for fname in os.listdir(pdir):
        if fname.startswith('index-') and fname.endswith('.npz') and fname != index_file:
            os.remove(osp.join(pdir, fname))
    return record


def _read_part_json(pdir: str) -> dict:
    path = osp.join(pdir, PART_FILE)
    rec = _read_json(path, 'part record')
    for key in ('format', 'schema_version', 'name', 'generation', 'num_instances',
                'image_format', 'index_file', 'shards', 'categories', 'strings'):
        if key not in rec:
            raise ValueError(f'{path}: missing field {key!r}')
    if rec['format'] != PART_FORMAT:
        raise ValueError(f'{path}: field "format" must be {PART_FORMAT!r}, got {rec["format"]!r}')
    if rec['schema_version'] != SCHEMA_VERSION:
        raise ValueError(f'{path}: unsupported schema_version {rec["schema_version"]!r} '
                         f'(this xpaste reads {SCHEMA_VERSION})')
    return rec


def _load_part(root: str, part: str) -> tuple[dict, dict[str, np.ndarray]]:
    pdir = _part_dir(root, part)
    rec = _read_part_json(pdir)
    path = osp.join(pdir, _check_name(rec['index_file'], 'index_file'))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{osp.join(pdir, PART_FILE)}: index file {path} is missing')
    with np.load(path, allow_pickle=False) as npz:
        cols = {k: npz[k] for k in INDEX_COLUMNS if k != 'part' and k in npz.files}
    missing = [k for k in INDEX_COLUMNS if k != 'part' and k not in cols]
    if missing:
        raise ValueError(f'{path}: missing index columns {missing}')
    lengths = {len(c) for c in cols.values()}
    if lengths != {rec['num_instances']}:
        raise ValueError(f'{path}: column lengths {sorted(lengths)} differ from num_instances '
                         f'{rec["num_instances"]} in {PART_FILE}')
    return rec, cols


def list_parts(root: str) -> list[str]:
    """Names of the committed parts of a bank (those with a ``part.json``), sorted.

    Args:
        root (str): Bank root.

    Returns:
        list[str]: Sorted part names. Folders without ``part.json`` (a writer that never closed)
        are left out.
    """
    pdir = osp.join(os.fspath(root), PARTS_DIR)
    if not osp.isdir(pdir):
        return []
    return sorted(d for d in os.listdir(pdir) if osp.isfile(osp.join(pdir, d, PART_FILE)))


def _incomplete_parts(root: str) -> list[str]:
    pdir = osp.join(os.fspath(root), PARTS_DIR)
    if not osp.isdir(pdir):
        return []
    return sorted(d for d in os.listdir(pdir)
                  if osp.isdir(osp.join(pdir, d)) and not osp.isfile(osp.join(pdir, d, PART_FILE)))


# --------------------------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------------------------
class BankWriter:
    """Append BGRA instances to a bank as one part (one writer per rank/process).

    Crops are encoded and appended to ``parts/<part>/shard-NNNNN.bin`` files; the part's index
    is committed atomically by :meth:`close` (also on leaving a ``with`` block without error).
    Until then the part does not exist for :func:`finalize_bank`. Leaving a ``with`` block with
    an exception calls :meth:`abort`, which deletes this session's shards and keeps the last
    commit. Parts of several writers are merged by :func:`finalize_bank`.

    Args:
        root (str): Bank root (created if needed).
        categories (list[dict]): Bank categories ``[{'id': int, 'name': str, ...}]``; identity is
            by name. Every part of a bank must have the same list.
        part (str): Name of this writer's part, e.g. ``f'part-{rank:05d}'``.
            Defaults to ``'part-00000'``.
        image_format (str): ``'webp'`` (lossy colour at ``quality``, lossless alpha) or ``'png'``.
            Defaults to ``'webp'``.
        quality (int): WebP quality in [1, 100]. Defaults to 95.
        max_side (int, optional): Downscale crops so their longest side is at most this
            (premultiplied ``INTER_AREA``); ``None`` keeps the size. Defaults to None.
        shard_bytes (int): Start a new shard file when the current one would exceed this size.
            Defaults to 256 MiB.
        mode (str): What to do when the part already exists: ``'x'`` raise ``FileExistsError``,
            ``'w'`` delete it and start empty, ``'a'`` keep its rows and append (new rows go to
            new shards). Leftovers of a writer that never closed are always discarded.
            Defaults to ``'x'``.
        info (dict, optional): Free-form JSON info stored with the part (rank, host, ...).
    """

    def __init__(self, root, categories: list[dict], part: str = 'part-00000',
                 image_format: str = 'webp', quality: int = 95, max_side: int | None = None,
                 shard_bytes: int = 256 << 20, *, mode: str = 'x', info: dict | None = None):
        self.root = os.fspath(root)
        self.part = _check_name(part, 'part')
        self.categories = validate_categories(categories)
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f'image_format must be one of {sorted(IMAGE_FORMATS)}, '
                             f'got {image_format!r}')
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f'quality must be an int in [1, 100], got {quality!r}')
        if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int)
                                     or max_side < 1):
            raise ValueError(f'max_side must be a positive int or None, got {max_side!r}')
        if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, int) or shard_bytes < 1:
            raise ValueError(f'shard_bytes must be a positive int, got {shard_bytes!r}')
        if mode not in ('x', 'w', 'a'):
            raise ValueError(f"mode must be 'x', 'w' or 'a', got {mode!r}")
        self.image_format = image_format
        self.quality = quality
        self.max_side = max_side
        self.shard_bytes = shard_bytes
        self.info = dict(info or {})
        self._name_to_cat = {c['name']: i for i, c in enumerate(self.categories)}
        self.part_dir = _part_dir(self.root, self.part)

        self._rows: dict[str, list] = {k: [] for k in INDEX_COLUMNS if k != 'part'}
        self._strings: dict[str, dict[str, int]] = {t: {} for t in STRING_TABLES}
        self._shards: list[dict] = []
        committed = osp.isfile(osp.join(self.part_dir, PART_FILE))
        if committed and mode == 'x':
            raise FileExistsError(
                f'part {self.part!r} already exists in {self.root} '
                f"({osp.join(self.part_dir, PART_FILE)}); pass mode='a' to append or mode='w' "
                'to overwrite')
        if committed and mode == 'w':
            os.remove(osp.join(self.part_dir, PART_FILE))
            committed = False
        if committed:  # mode == 'a'
            rec, cols = _load_part(self.root, self.part)
            if [(c['id'], c['name']) for c in rec['categories']] != [
                    (c['id'], c['name']) for c in self.categories]:
                raise ValueError(f'{osp.join(self.part_dir, PART_FILE)}: its categories differ '
                                 'from the categories given to BankWriter')
            if rec['image_format'] != image_format:
                raise ValueError(f'{osp.join(self.part_dir, PART_FILE)}: image_format is '
                                 f'{rec["image_format"]!r}, cannot append {image_format!r}')
            for k in self._rows:
                self._rows[k] = cols[k].tolist()
            for t in STRING_TABLES:
                self._strings[t] = {s: i for i, s in enumerate(rec['strings'][t])}
            self._shards = [dict(s) for s in rec['shards']]
        self._keep_files = {s['file'] for s in self._shards}
        if committed:
            self._keep_files |= {PART_FILE, rec['index_file']}
        os.makedirs(self.part_dir, exist_ok=True)
        for fname in os.listdir(self.part_dir):  # leftovers of a writer that never closed
            if fname not in self._keep_files and osp.isfile(osp.join(self.part_dir, fname)):
                os.remove(osp.join(self.part_dir, fname))
        self._new_shards: list[str] = []
        self._fh = None
        self._closed = False

    # ---------------------------------------------------------------- properties
    @property
    def num_instances(self) -> int:
        """Rows in this part, including rows of a previous commit in ``mode='a'``."""
        return len(self._rows['category'])

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called."""
        return self._closed

    def sources(self) -> set[str]:
        """The distinct ``source`` strings already in this part (to skip done work on resume)."""
        return set(self._strings['source'])

    # ---------------------------------------------------------------- writing
    def _intern(self, table: str, value: str) -> int:
        if not isinstance(value, str):
            raise TypeError(f'{table} must be a str, got {value!r}')
        ids = self._strings[table]
        idx = ids.get(value)
        if idx is None:
            idx = len(ids)
            if idx > _STRING_ID_MAX[table]:
                raise ValueError(f'too many distinct {table} strings in part {self.part!r} '
                                 f'(limit {_STRING_ID_MAX[table] + 1})')
            ids[value] = idx
        return idx

    def _write_blob(self, data: bytes) -> tuple[int, int]:
        if self._fh is None or (self._shards[-1]['bytes'] > 0
                                and self._shards[-1]['bytes'] + len(data) > self.shard_bytes):
            if self._fh is not None:
                self._fh.close()
            if len(self._shards) >= _UINT16_MAX:
                raise ValueError(f'part {self.part!r} reached {_UINT16_MAX} shards; '
                                 'raise shard_bytes')
            fname = f'shard-{len(self._shards):05d}.bin'
            self._fh = open(osp.join(self.part_dir, fname), 'wb')
            self._shards.append({'file': fname, 'bytes': 0})
            self._new_shards.append(fname)
        offset = self._shards[-1]['bytes']
        self._fh.write(data)
        self._shards[-1]['bytes'] = offset + len(data)
        return len(self._shards) - 1, offset

    def add(self, bgra: np.ndarray, category: str, *, mask: np.ndarray | None = None,
            crop: bool = True, clip_score: float = float('nan'),
            image_score: float = float('nan'), segmenter: str = '', source: str = '',
            prompt: str = '', seed: int = -1) -> int:
        """Encode and append one instance.

        Args:
            bgra (np.ndarray): HxWx4 uint8 (B, G, R, alpha 0..255), or HxWx3 BGR with ``mask``.
            category (str): Category name (one of the writer's categories).
            mask (np.ndarray, optional): HxW foreground that becomes the alpha channel: bool,
                integer 0/1 or 0..255, or float in [0, 1]. Replaces the alpha of an HxWx4 input.
            crop (bool): Crop to the tight box of ``alpha > 0`` before storing. Defaults to True.
            clip_score (float): CLIP score of the cut-out. Defaults to NaN (unknown).
            image_score (float): CLIP score of the whole source image. Defaults to NaN.
            segmenter (str): Name of the segmenter that produced the mask. Defaults to ''.
            source (str): Source image (path or id). Defaults to ''.
            prompt (str): Generation prompt. Defaults to ''.
            seed (int): Generation seed. Defaults to -1 (not generated).

        Returns:
            int: Row index of the instance within this part.
        """
        if self._closed:
            raise RuntimeError(f'BankWriter for part {self.part!r} is closed')
        if not isinstance(bgra, np.ndarray) or bgra.dtype != np.uint8 or bgra.ndim != 3:
            raise ValueError('bgra must be an HxWx4 (or HxWx3 with mask=) uint8 array, got '
                             f'{type(bgra).__name__} {getattr(bgra, "dtype", "")} '
                             f'{getattr(bgra, "shape", "")}')
        if mask is not None:
            if bgra.shape[2] not in (3, 4):
                raise ValueError(f'bgra must have 3 or 4 channels, got shape {bgra.shape}')
            alpha = _mask_to_alpha(mask, bgra.shape[:2])
            img = np.dstack([bgra[..., :3], alpha])
        elif bgra.shape[2] == 4:
            img = bgra
        else:
            raise ValueError(f'bgra of shape {bgra.shape} needs 4 channels (BGRA) or mask=')
        if category not in self._name_to_cat:
            raise ValueError(f'unknown category {category!r} for part {self.part!r}; the bank '
                             f'has {len(self.categories)} categories, e.g. '
                             f'{[c["name"] for c in self.categories[:5]]}')
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f'seed must be an int, got {seed!r}')
        if crop:
            x, y, w, h = cv2.boundingRect(np.ascontiguousarray(img[..., 3]))
            if w == 0 or h == 0:
                raise ValueError(f'instance of {category!r} from {source!r} has an empty alpha')
            img = img[y:y + h, x:x + w]
        h, w = img.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f'instance of {category!r} from {source!r} has shape {img.shape}')
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(1, min(self.max_side, round(w * scale))),
                    max(1, min(self.max_side, round(h * scale))))
            img = resize_bgra(img, size)
            h, w = img.shape[:2]
        if max(h, w) > _UINT16_MAX:
            raise ValueError(f'crop of {h}x{w} exceeds {_UINT16_MAX} px; set max_side')
        data = encode_bgra(np.ascontiguousarray(img), self.image_format, self.quality)
        ids = {t: self._intern(t, v) for t, v in
               (('segmenter', segmenter), ('source', source), ('prompt', prompt))}
        shard, offset = self._write_blob(data)
        row = self._rows
        row['category'].append(self._name_to_cat[category])
        row['shard'].append(shard)
        row['offset'].append(offset)
        row['length'].append(len(data))
        row['height'].append(h)
        row['width'].append(w)
        row['area'].append(int(np.count_nonzero(img[..., 3] >= 128)))
        row['clip_score'].append(float(clip_score))
        row['image_score'].append(float(image_score))
        row['segmenter'].append(ids['segmenter'])
        row['seed'].append(int(seed))
        row['prompt_id'].append(ids['prompt'])
        row['source_id'].append(ids['source'])
        return self.num_instances - 1

    def close(self) -> None:
        """Flush the shards and commit this part's index atomically. Idempotent."""
        if self._closed:
            return
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
        columns = {k: np.asarray(v, dtype=INDEX_COLUMNS[k]) for k, v in self._rows.items()}
        strings = {t: list(ids) or [''] for t, ids in self._strings.items()}
        commit_part(self.root, self.part, self.categories, columns, self._shards, strings,
                    self.image_format, self.info)
        self._closed = True

    def abort(self) -> None:
        """Drop what was added since opening: delete this session's shards, keep the last commit."""
        if self._closed:
            return
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for fname in self._new_shards:
            path = osp.join(self.part_dir, fname)
            if osp.isfile(path):
                os.remove(path)
        self._closed = True

    def __enter__(self) -> 'BankWriter':
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(root={self.root!r}, part={self.part!r}, '
                f'image_format={self.image_format!r}, quality={self.quality}, '
                f'max_side={self.max_side}, shard_bytes={self.shard_bytes}, '
                f'num_instances={self.num_instances})')


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------
def _check_row_ends(where: str, part_idx: np.ndarray, shard: np.ndarray, ends: np.ndarray,
                    shard_paths: list[list[str]], shard_sizes: list[list[int]]) -> None:
    """Raise if a row points outside its shard; lists every offending shard."""
    if len(ends) == 0:
        return
    nshards = np.array([len(s) for s in shard_paths], dtype=np.int64)
    if int(part_idx.max()) >= len(nshards):
        raise ValueError(f'{where}: index column "part" has value {int(part_idx.max())} but '
                         f'there are only {len(nshards)} parts')
    bad = shard.astype(np.int64) >= nshards[part_idx]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f'{where}: row {i} points at shard {int(shard[i])} of part '
                         f'{int(part_idx[i])}, which has {int(nshards[part_idx[i]])} shards')
    width = int(nshards.max())
    key = part_idx.astype(np.int64) * width + shard
    max_end = np.zeros(len(nshards) * width, dtype=np.uint64)
    np.maximum.at(max_end, key, ends)
    problems = []
    for p, (paths, sizes) in enumerate(zip(shard_paths, shard_sizes)):
        for s, (path, size) in enumerate(zip(paths, sizes)):
            need = int(max_end[p * width + s])
            if need > size:
                problems.append(f'{path} ({size} bytes, rows need {need})')
    if problems:
        raise ValueError(f'{where}: truncated or corrupt shard(s), index rows point past the end '
                         f'of: {"; ".join(problems)}')


def read_manifest(root) -> dict:
    """Read and validate ``<root>/manifest.json`` (fields, schema version, categories, paths).

    Args:
        root (str): Bank root.

    Returns:
        dict: The manifest.
    """
    root = os.fspath(root)
    path = osp.join(root, MANIFEST_FILE)
    if not osp.isfile(path) and list_parts(root):
        raise FileNotFoundError(f'{path} not found, but {root} has parts: run '
                                'finalize_bank(root) to merge them into a bank')
    man = _read_json(path, 'bank manifest')
    if not isinstance(man, dict):
        raise ValueError(f'{path}: expected a JSON object, got {type(man).__name__}')
    for key in _MANIFEST_FIELDS:
        if key not in man:
            raise ValueError(f'{path}: missing field {key!r}')
    if man['format'] != BANK_FORMAT:
        raise ValueError(f'{path}: field "format" must be {BANK_FORMAT!r}, got {man["format"]!r}')
    if man['schema_version'] != SCHEMA_VERSION:
        raise ValueError(f'{path}: unsupported schema_version {man["schema_version"]!r} '
                         f'(this xpaste reads schema_version {SCHEMA_VERSION})')
    n = man['num_instances']
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f'{path}: num_instances must be a non-negative int, got {n!r}')
    man['categories'] = validate_categories(man['categories'], f'{path}: categories')
    index = man['index']
    if not isinstance(index, dict) or 'dir' not in index or 'columns' not in index:
        raise ValueError(f'{path}: field "index" must be {{"dir": str, "columns": {{...}}}}, '
                         f'got {index!r}')
    safe_join(root, index['dir'], what='index.dir')
    missing = [c for c in INDEX_COLUMNS if c not in index['columns']]
    if missing:
        raise ValueError(f'{path}: index.columns lacks {missing}')
    strings = man['strings']
    if not isinstance(strings, dict) or any(t not in strings for t in STRING_TABLES):
        raise ValueError(f'{path}: field "strings" must map {sorted(STRING_TABLES)} to files, '
                         f'got {strings!r}')
    for t in STRING_TABLES:
        safe_join(root, strings[t], what=f'strings.{t}')
    if not isinstance(man['parts'], list):
        raise ValueError(f'{path}: field "parts" must be a list, got {man["parts"]!r}')
    for i, p in enumerate(man['parts']):
        if not isinstance(p, dict) or 'name' not in p or 'shards' not in p:
            raise ValueError(f'{path}: parts[{i}] must have "name" and "shards", got {p!r}')
        for j, s in enumerate(p['shards']):
            if not isinstance(s, dict) or 'path' not in s or 'bytes' not in s:
                raise ValueError(f'{path}: parts[{i}].shards[{j}] must have "path" and "bytes", '
                                 f'got {s!r}')
            safe_join(root, s['path'], what=f'parts[{i}].shards[{j}].path')
    return man


def finalize_bank(root, build_info: dict | None = None, size_stats: dict | None = None) -> dict:
    """Merge all committed parts into ``<root>/index`` + ``<root>/meta`` and write the manifest.

    Rows are ordered by part name (sorted), then by insertion order within a part. String tables
    are merged in first-seen order. Files are written atomically, ``manifest.json`` last, and
    rerunning gives the same bank (never duplicated rows). Parts without ``part.json`` (a
    writer that never closed) are skipped with a warning.

    Args:
        root (str): Bank root.
        build_info (dict, optional): How the bank was built (models, thresholds, seeds, package
            versions, config hash). ``None`` keeps the value of an existing manifest.
        size_stats (dict, optional): Per-class size statistics
            (:func:`xpaste.bank.stats.compute_size_stats`). ``None`` keeps an existing value.

    Returns:
        dict: The written manifest.
    """
    root = os.fspath(root)
    names = list_parts(root)
    unfinished = _incomplete_parts(root)
    if unfinished:
        warnings.warn(f'{root}: skipping {len(unfinished)} unfinished part(s) without '
                      f'{PART_FILE}: {unfinished[:10]}', stacklevel=2)
    if not names:
        raise FileNotFoundError(f'{osp.join(root, PARTS_DIR)}: no committed part to finalize '
                                '(did every BankWriter close()?)')
    if len(names) > _UINT16_MAX + 1:
        raise ValueError(f'{root}: {len(names)} parts exceed the limit {_UINT16_MAX + 1}')
    old = {}
    man_path = osp.join(root, MANIFEST_FILE)
    if osp.isfile(man_path):
        try:
            old = _read_json(man_path, 'bank manifest')
        except ValueError:
            old = {}
    categories = None
    merged = {k: [] for k in INDEX_COLUMNS}
    tables: dict[str, dict[str, int]] = {t: {} for t in STRING_TABLES}
    parts_meta, shard_paths, shard_sizes = [], [], []
    for p, name in enumerate(names):
        rec, cols = _load_part(root, name)
        cats = [(c['id'], c['name']) for c in rec['categories']]
        if categories is None:
            categories = validate_categories(rec['categories'], f'part {name!r}: categories')
            first = (names[0], cats)
        elif cats != first[1]:
            raise ValueError(f'{root}: part {name!r} has different categories than part '
                             f'{first[0]!r}; all parts of a bank must share one category list')
        n = rec['num_instances']
        for table, colname in STRING_TABLES.items():  # part-local ids -> merged ids
            ids = tables[table]
            lut = np.array([ids.setdefault(s, len(ids)) for s in rec['strings'][table]],
                           dtype=np.int64)
            if len(ids) > _STRING_ID_MAX[table] + 1:
                raise ValueError(f'{root}: too many distinct {table} strings after merging '
                                 f'(limit {_STRING_ID_MAX[table] + 1})')
            cols[colname] = lut[cols[colname]].astype(INDEX_COLUMNS[colname])
        for k, col in cols.items():
            merged[k].append(col)
        merged['part'].append(np.full(n, p, dtype=INDEX_COLUMNS['part']))
        paths, sizes = [], []
        for s in rec['shards']:
            rel = f'{PARTS_DIR}/{name}/{_check_name(s["file"], "shard file")}'
            full = osp.join(root, rel)
            if not osp.isfile(full):
                raise FileNotFoundError(f'{osp.join(_part_dir(root, name), PART_FILE)}: shard '
                                        f'{full} is missing')
            actual = osp.getsize(full)
            if actual < s['bytes']:
                raise ValueError(f'{osp.join(_part_dir(root, name), PART_FILE)}: shard {full} is '
                                 f'{actual} bytes, the part recorded {s["bytes"]} (truncated)')
            paths.append(rel)
            sizes.append(int(s['bytes']))
        shard_paths.append(paths)
        shard_sizes.append(sizes)
        parts_meta.append({
            'name': name,
            'num_instances': n,
            'image_format': rec['image_format'],
            'shards': [{'path': r, 'bytes': b} for r, b in zip(paths, sizes)],
            'info': rec.get('info', {}),
        })
    columns = {k: np.concatenate(v) if v else np.zeros(0, INDEX_COLUMNS[k])
               for k, v in merged.items()}
    total = len(columns['category'])
    _check_row_ends(root, columns['part'], columns['shard'],
                    columns['offset'] + columns['length'].astype(np.uint64), shard_paths,
                    shard_sizes)

    os.makedirs(osp.join(root, INDEX_DIR), exist_ok=True)
    for k, col in columns.items():
        _atomic_save_npy(osp.join(root, INDEX_DIR, f'{k}.npy'), col)
    strings = {}
    for table, ids in tables.items():
        rel = f'{META_DIR}/{table}.json'
        atomic_write_json(osp.join(root, rel), list(ids) or [''])
        strings[table] = rel
    manifest = {
        'format': BANK_FORMAT,
        'schema_version': SCHEMA_VERSION,
        'num_instances': int(total),
        'categories': categories,
        'index': {'dir': INDEX_DIR, 'columns': {k: dt.str for k, dt in INDEX_COLUMNS.items()}},
        'strings': strings,
        'parts': parts_meta,
        'build': dict(build_info) if build_info is not None else old.get('build', {}),
    }
    stats = size_stats if size_stats is not None else old.get('size_stats')
    if stats is not None:
        manifest['size_stats'] = stats
    atomic_write_json(man_path, manifest)
    return manifest


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------
class BankReader:
    """Read-only access to a finalized bank.

    The manifest is validated and the index columns are memory-mapped at construction; shard
    files are opened on first read and read with ``os.pread`` (no decode cache here; see
    :class:`xpaste.datasets.InstanceBank`). Index columns are available as
    ``reader.columns[name]`` and as attributes (``reader.category``, ``reader.clip_score``, ...).
    A pickled reader carries only its root and reopens itself.

    Args:
        root (str): Bank root.
        verify (bool): Check, at open, that every shard exists, is at least as long as the
            manifest records, and that every index row lies inside its shard. Defaults to True.
    """

    def __init__(self, root, verify: bool = True):
        self.root = osp.abspath(os.fspath(root))
        self.verify = verify
        self._open()

    def _open(self) -> None:
        man = read_manifest(self.root)
        self.manifest = man
        self.categories: list[dict] = man['categories']
        self.category_names: list[str] = [c['name'] for c in self.categories]
        n = man['num_instances']
        idx_dir = safe_join(self.root, man['index']['dir'], what='index.dir')
        cols = {}
        for k, dtype in INDEX_COLUMNS.items():
            path = osp.join(idx_dir, f'{k}.npy')
            if not osp.isfile(path):
                raise FileNotFoundError(f'{osp.join(self.root, MANIFEST_FILE)}: index column '
                                        f'{k!r} is missing: {path}')
            try:
                col = np.load(path, mmap_mode='r' if n else None, allow_pickle=False)
            except ValueError as e:
                raise ValueError(f'{path}: not a valid .npy column ({e})') from e
            if col.dtype != dtype or col.shape != (n, ):
                raise ValueError(f'{path}: expected {dtype} of shape ({n},), got {col.dtype} of '
                                 f'shape {col.shape} (interrupted finalize? rerun '
                                 'finalize_bank)')
            cols[k] = col
        self.columns: dict[str, np.ndarray] = cols
        for table in STRING_TABLES:
            path = safe_join(self.root, man['strings'][table], what=f'strings.{table}')
            if not osp.isfile(path):
                raise FileNotFoundError(f'{osp.join(self.root, MANIFEST_FILE)}: {table} string '
                                        f'table is missing: {path}')
        self._shard_paths = [[safe_join(self.root, s['path'], what=f'parts[{i}].shards[{j}].path')
                              for j, s in enumerate(p['shards'])]
                             for i, p in enumerate(man['parts'])]
        self._shard_sizes = [[int(s['bytes']) for s in p['shards']] for p in man['parts']]
        self._fds: dict[tuple[int, int], int] = {}
        self._strings: dict[str, list[str]] = {}
        if self.verify:
            self._verify()

    def _verify(self) -> None:
        problems = []
        actual = []
        for paths, sizes in zip(self._shard_paths, self._shard_sizes):
            row = []
            for path, size in zip(paths, sizes):
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{osp.join(self.root, MANIFEST_FILE)}: shard '
                                            f'{path} is missing')
                got = osp.getsize(path)
                if got < size:
                    problems.append(f'{path} ({got} bytes, manifest records {size})')
                row.append(got)
            actual.append(row)
        if problems:
            raise ValueError(f'{self.root}: truncated shard(s): {"; ".join(problems)}')
        c = self.columns
        _check_row_ends(self.root, np.asarray(c['part']), np.asarray(c['shard']),
                        np.asarray(c['offset']) + np.asarray(c['length']).astype(np.uint64),
                        self._shard_paths, actual)

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.manifest['num_instances']

    def __getattr__(self, name: str):
        cols = self.__dict__.get('columns')
        if cols is not None and name in cols:
            return cols[name]
        raise AttributeError(f'{type(self).__name__!r} object has no attribute {name!r}')

    @property
    def index_nbytes(self) -> int:
        """Bytes of the index columns (``index_nbytes / len(reader)`` is bytes per instance)."""
        return index_nbytes(self.columns)

    def _check_i(self, i) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f'instance index {i} out of range for a bank of {n} instances')
        return i + n if i < 0 else i

    def shard_path(self, i: int) -> str:
        """Absolute path of the shard holding instance ``i``."""
        i = self._check_i(i)
        return self._shard_paths[int(self.columns['part'][i])][int(self.columns['shard'][i])]

    def read_bytes(self, i: int) -> bytes:
        """Encoded bytes of instance ``i`` (one ``pread``).

        Args:
            i (int): Instance index.

        Returns:
            bytes: The encoded crop.
        """
        i = self._check_i(i)
        c = self.columns
        key = (int(c['part'][i]), int(c['shard'][i]))
        offset, length = int(c['offset'][i]), int(c['length'][i])
        fd = self._fds.get(key)
        if fd is None:
            fd = os.open(self._shard_paths[key[0]][key[1]], os.O_RDONLY)
            self._fds[key] = fd
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise OSError(f'{self._shard_paths[key[0]][key[1]]}: short read for instance {i} '
                          f'({len(data)} of {length} bytes at offset {offset}); shard truncated?')
        return data

    def decode(self, i: int) -> np.ndarray:
        """Decoded instance ``i`` as HxWx4 BGRA uint8.

        Raises:
            ValueError: If its bytes cannot be decoded (message names the instance and shard).
        """
        data = self.read_bytes(i)
        try:
            return decode_bgra(data)
        except ValueError as e:
            raise ValueError(f'instance {i} in {self.shard_path(i)}: {e}') from e

    def strings(self, table: str) -> list[str]:
        """A string table (``'segmenter'``, ``'source'`` or ``'prompt'``), loaded on first use."""
        if table not in STRING_TABLES:
            raise KeyError(f'unknown string table {table!r}; expected one of '
                           f'{sorted(STRING_TABLES)}')
        if table not in self._strings:
            path = safe_join(self.root, self.manifest['strings'][table], what=f'strings.{table}')
            values = _read_json(path, f'{table} string table')
            if not isinstance(values, list):
                raise ValueError(f'{path}: expected a JSON list of strings')
            self._strings[table] = values
        return self._strings[table]

    def record(self, i: int) -> dict:
        """All index fields of instance ``i`` as Python values, strings resolved."""
        i = self._check_i(i)
        rec = {k: c[i].item() for k, c in self.columns.items()}
        rec['category_name'] = self.category_names[rec['category']]
        rec['segmenter_name'] = self.strings('segmenter')[rec['segmenter']]
        rec['source'] = self.strings('source')[rec['source_id']]
        rec['prompt'] = self.strings('prompt')[rec['prompt_id']]
        return rec

    def close(self) -> None:
        """Close the open shard files (the reader reopens them on the next read)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> 'BankReader':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if self.__dict__.get('_fds'):
            self.close()

    def __getstate__(self) -> dict:
        return {'root': self.root, 'verify': self.verify}

    def __setstate__(self, state: dict) -> None:
        self.root = state['root']
        self.verify = state['verify']
        self._open()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(root={self.root!r}, num_instances={len(self)}, '
                f'num_categories={len(self.categories)}, parts={len(self.manifest["parts"])})')
