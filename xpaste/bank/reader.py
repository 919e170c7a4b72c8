"""``BankReader``: read-only, memory-mapped access to one version of a bank."""
import os
import os.path as osp

import numpy as np

from .codec import decode_bgra
from .manifest import (check_row_ends, manifest_version, open_index_column, read_manifest,
                       read_string_table, shard_layout, string_table_path)
from .schema import INDEX_COLUMNS, MANIFEST_FILE, STRING_TABLES, index_nbytes


class BankReader:
    """Read-only access to a finalized bank.

    The manifest is validated and the index columns are memory-mapped at construction; shard
    files are opened on first read and read with ``os.pread`` (no decode cache here; see
    :class:`xpaste.datasets.InstanceBank`). Index columns are available as
    ``reader.column(name)``, ``reader.columns[name]`` and as attributes (``reader.category``,
    ``reader.area``, ...). A reader keeps reading the version it opened after the bank switches
    to a new one, as long as that version is kept (``finalize_bank(keep_versions=...)``).
    A pickled reader carries only its root, ``verify`` and ``version``, and reopens itself.

    Args:
        root (str): Bank root.
        verify (bool): Check, at open, that every shard exists, is at least as long as the
            manifest records, and that every index row lies inside its shard. Defaults to True.
        version (int, optional): Open this kept version instead of the live one. Defaults to
            None (the live version at the time of opening).
    """

    def __init__(self, root, verify: bool = True, version: int | None = None):
        self.root = osp.abspath(os.fspath(root))
        self.verify = verify
        self.requested_version = version
        self._open()

    def _open(self) -> None:
        man = read_manifest(self.root, self.requested_version)
        self.manifest = man
        self.version: int = manifest_version(man)
        self.categories: list[dict] = man['categories']
        self.category_names: list[str] = [c['name'] for c in self.categories]
        self.columns: dict[str, np.ndarray] = {
            k: open_index_column(self.root, man, k) for k in INDEX_COLUMNS}
        for table in STRING_TABLES:
            path = string_table_path(self.root, man, table)
            if not osp.isfile(path):
                raise FileNotFoundError(f'{osp.join(self.root, MANIFEST_FILE)}: {table} string '
                                        f'table is missing: {path}')
        self._shard_paths, self._shard_sizes = shard_layout(self.root, man)
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
        check_row_ends(self.root, np.asarray(c['part']), np.asarray(c['shard']),
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

    def column(self, name: str) -> np.ndarray:
        """Index column ``name`` (read-only, memory-mapped), one value per instance.

        Args:
            name (str): One of :data:`INDEX_COLUMNS`, e.g. ``'area'`` (pixels with alpha >= 128
                in the stored crop), ``'category'``, ``'clip_score'``, ``'height'``.

        Returns:
            np.ndarray: Shape ``(len(reader),)``, in the dtype of the format.
        """
        if name not in self.columns:
            raise KeyError(f'unknown index column {name!r}; expected one of '
                           f'{list(INDEX_COLUMNS)}')
        return self.columns[name]

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
            self._strings[table] = read_string_table(self.root, self.manifest, table)
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
        return {'root': self.root, 'verify': self.verify, 'version': self.requested_version}

    def __setstate__(self, state: dict) -> None:
        self.root = state['root']
        self.verify = state['verify']
        self.requested_version = state.get('version')
        self._open()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(root={self.root!r}, version={self.version}, '
                f'num_instances={len(self)}, num_categories={len(self.categories)}, '
                f'parts={len(self.manifest["parts"])})')
