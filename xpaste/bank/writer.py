"""``BankWriter``: append BGRA instances to one part of a bank."""
import os
import os.path as osp

import numpy as np

from xpaste.utils.checks import check_number
from .codec import (DEFAULT_IMAGE_FORMAT, DEFAULT_QUALITY, check_image_format, encode_bgra,
                    mask_to_alpha, prepare_crop)
from .parts import commit_part, load_part, part_dir, remove_unprotected
from .schema import (INDEX_COLUMNS, PART_COLUMNS, PART_FILE, STRING_ID_MAX, STRING_TABLES,
                     UINT16_MAX, category_key, check_name, validate_categories)

#: Size at which a writer starts a new shard file, unless told otherwise.
DEFAULT_SHARD_BYTES = 256 << 20


class BankWriter:
    """Append BGRA instances to a bank as one part (one writer per rank/process).

    Crops are encoded and appended to ``parts/<part>/shard-NNNNN.bin`` files; the part's index
    is committed atomically by :meth:`close` (also on leaving a ``with`` block without error).
    Until then the part does not exist for :func:`finalize_bank`. Leaving a ``with`` block with
    an exception calls :meth:`abort`, which deletes this session's shards and keeps the last
    commit. Parts of several writers are merged by :func:`finalize_bank`.

    Shards that the live or a kept version of the bank reads are never modified or deleted:
    rewriting a part of a finalized bank (``mode='w'``) writes new shard files beside them, and
    the bank keeps serving the old version until :func:`finalize_bank` switches to the new one.

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
            ``'w'`` start it empty, ``'a'`` keep its rows and append (new rows go to new
            shards). Leftovers of a writer that never closed are always discarded.
            Defaults to ``'x'``.
        info (dict, optional): Free-form JSON info stored with the part (rank, host, ...).
    """

    def __init__(self, root, categories: list[dict], part: str = 'part-00000',
                 image_format: str = DEFAULT_IMAGE_FORMAT, quality: int = DEFAULT_QUALITY,
                 max_side: int | None = None, shard_bytes: int = DEFAULT_SHARD_BYTES, *,
                 mode: str = 'x', info: dict | None = None):
        self.root = os.fspath(root)
        self.part = check_name(part, 'part')
        self.categories = validate_categories(categories)
        check_image_format(image_format)
        quality = check_number('BankWriter.quality', quality, 1, 100, integer=True)
        max_side = check_number('BankWriter.max_side', max_side, 1, integer=True, allow_none=True)
        shard_bytes = check_number('BankWriter.shard_bytes', shard_bytes, 1, integer=True)
        if mode not in ('x', 'w', 'a'):
            raise ValueError(f"mode must be 'x', 'w' or 'a', got {mode!r}")
        self.image_format = image_format
        self.quality = quality
        self.max_side = max_side
        self.shard_bytes = shard_bytes
        self.info = dict(info or {})
        self._name_to_cat = {c['name']: i for i, c in enumerate(self.categories)}
        self.part_dir = part_dir(self.root, self.part)

        self._rows: dict[str, list] = {k: [] for k in PART_COLUMNS}
        self._strings: dict[str, dict[str, int]] = {t: {} for t in STRING_TABLES}
        self._shards: list[dict] = []
        keep = self._open_part(mode)
        remove_unprotected(self.root, self.part, keep)  # leftovers of a writer that never closed
        os.makedirs(self.part_dir, exist_ok=True)
        self._new_shards: list[str] = []
        self._fh = None
        self._closed = False

    def _open_part(self, mode: str) -> set[str]:
        """Load a committed part for ``mode='a'``; returns the file names to keep."""
        record = osp.join(self.part_dir, PART_FILE)
        committed = osp.isfile(record)
        if committed and mode == 'x':
            raise FileExistsError(
                f'part {self.part!r} already exists in {self.root} ({record}); pass mode='
                "'a' to append or mode='w' to overwrite")
        if committed and mode == 'w':
            os.remove(record)
        if not committed or mode != 'a':
            return set()
        rec, cols = load_part(self.root, self.part)
        if category_key(rec['categories']) != category_key(self.categories):
            raise ValueError(f'{record}: its categories differ from the categories given to '
                             'BankWriter')
        if rec['image_format'] != self.image_format:
            raise ValueError(f'{record}: image_format is {rec["image_format"]!r}, cannot append '
                             f'{self.image_format!r}')
        for k in self._rows:
            self._rows[k] = cols[k].tolist()
        for t in STRING_TABLES:
            self._strings[t] = {s: i for i, s in enumerate(rec['strings'][t])}
        self._shards = [dict(s) for s in rec['shards']]
        return {s['file'] for s in self._shards} | {PART_FILE, rec['index_file']}

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
            if idx > STRING_ID_MAX[table]:
                raise ValueError(f'too many distinct {table} strings in part {self.part!r} '
                                 f'(limit {STRING_ID_MAX[table] + 1})')
            ids[value] = idx
        return idx

    def _new_shard_file(self) -> str:
        """The next free shard file name (names still read by a bank version are skipped)."""
        k = len(self._shards)
        while osp.exists(osp.join(self.part_dir, f'shard-{k:05d}.bin')):
            k += 1
        return f'shard-{k:05d}.bin'

    def _write_blob(self, data: bytes) -> tuple[int, int]:
        if self._fh is None or (self._shards[-1]['bytes'] > 0
                                and self._shards[-1]['bytes'] + len(data) > self.shard_bytes):
            if self._fh is not None:
                self._fh.close()
            if len(self._shards) >= UINT16_MAX:
                raise ValueError(f'part {self.part!r} reached {UINT16_MAX} shards; '
                                 'raise shard_bytes')
            fname = self._new_shard_file()
            self._fh = open(osp.join(self.part_dir, fname), 'xb')
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
            img = np.dstack([bgra[..., :3], mask_to_alpha(mask, bgra.shape[:2])])
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
        img = prepare_crop(img, crop=crop, max_side=self.max_side,
                           what=f'instance of {category!r} from {source!r}')
        h, w = img.shape[:2]
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
