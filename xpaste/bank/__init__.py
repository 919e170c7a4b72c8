"""The bank format: what training needs of a bank, and nothing of how banks are built.

A bank is a directory (``docs/bank_format.md``): a JSON manifest naming the live version,
memory-mapped index columns and WebP/PNG shards. The package is split by concern:

* :mod:`.schema` names, index columns, limits and path helpers;
* :mod:`.codec` encodes, decodes and resizes the stored BGRA crops;
* :mod:`.parts` and :mod:`.writer` write parts (:class:`BankWriter`, :func:`commit_part`);
* :mod:`.manifest` reads and validates manifests; :mod:`.merge` merges parts
  (:func:`finalize_bank`) into a new version, which :mod:`.versions` switches to atomically;
* :mod:`.reader` reads a version (:class:`BankReader`);
* :mod:`.check` and :mod:`.repair` verify a bank and drop broken rows;
* :mod:`.stats` computes per-class size statistics and :mod:`.annotations` reads LVIS/COCO
  annotation files as plain json.

It imports neither mmdet nor the builder (:mod:`xpaste.builder`), which builds banks on top of it.
"""
from .annotations import (COCO_URL_PREFIX, AnnotationError, check_lvis_annotations,
                          load_annotations, load_lvis_annotations, lvis_class_names,
                          names_from_ann_file, select_categories)
from .check import CheckReport, Problem, bank_is_intact, check_bank
from .codec import (DEFAULT_IMAGE_FORMAT, DEFAULT_QUALITY, IMAGE_FORMATS, decode_bgra,
                    encode_bgra, resize_bgra)
from .manifest import package_versions, read_manifest
from .merge import finalize_bank
from .parts import commit_part, drop_part
from .reader import BankReader
from .repair import RepairResult, repair_bank
from .schema import (INDEX_COLUMNS, SCHEMA_VERSION, empty_index, index_nbytes, list_parts,
                     safe_join, validate_categories)
from .stats import (SIZE_STATS_FORMAT, SIZE_STATS_VERSION, class_frequency, compute_size_stats,
                    load_size_stats, save_size_stats, validate_size_stats)
from .versions import DEFAULT_KEEP_VERSIONS, prune_versions
from .writer import DEFAULT_SHARD_BYTES, BankWriter

__all__ = [
    'COCO_URL_PREFIX', 'AnnotationError', 'check_lvis_annotations', 'load_annotations',
    'load_lvis_annotations', 'lvis_class_names', 'names_from_ann_file', 'select_categories',
    'SIZE_STATS_FORMAT', 'SIZE_STATS_VERSION', 'class_frequency', 'compute_size_stats',
    'load_size_stats', 'save_size_stats', 'validate_size_stats', 'INDEX_COLUMNS',
    'SCHEMA_VERSION', 'BankReader', 'BankWriter', 'commit_part', 'decode_bgra', 'empty_index',
    'encode_bgra', 'finalize_bank', 'index_nbytes', 'list_parts', 'package_versions',
    'read_manifest', 'resize_bgra', 'safe_join', 'validate_categories', 'IMAGE_FORMATS',
    'DEFAULT_IMAGE_FORMAT', 'DEFAULT_QUALITY', 'DEFAULT_SHARD_BYTES', 'DEFAULT_KEEP_VERSIONS',
    'drop_part', 'prune_versions', 'CheckReport', 'Problem', 'check_bank', 'bank_is_intact',
    'RepairResult', 'repair_bank'
]
