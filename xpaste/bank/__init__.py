"""The bank format: what training needs of a bank, and nothing of how banks are built.

A bank is a directory (``docs/bank_format.md``): a JSON manifest, memory-mapped index columns and
WebP/PNG shards. This package writes (:class:`BankWriter`, :func:`finalize_bank`) and reads
(:class:`BankReader`) it, computes per-class size statistics (:mod:`.stats`) and reads LVIS/COCO
annotation files as plain json (:mod:`.annotations`). It imports neither mmdet nor the builder
(:mod:`xpaste.builder`), which builds banks on top of it.
"""
from .annotations import (COCO_URL_PREFIX, AnnotationError, check_lvis_annotations,
                          load_annotations, load_lvis_annotations, lvis_class_names,
                          names_from_ann_file, select_categories)
from .stats import (SIZE_STATS_FORMAT, SIZE_STATS_VERSION, class_frequency, compute_size_stats,
                    load_size_stats, save_size_stats, validate_size_stats)
from .storage import (INDEX_COLUMNS, SCHEMA_VERSION, BankReader, BankWriter, commit_part,
                      decode_bgra, empty_index, encode_bgra, finalize_bank, index_nbytes,
                      list_parts, package_versions, read_manifest, resize_bgra, safe_join)

__all__ = [
    'COCO_URL_PREFIX', 'AnnotationError', 'check_lvis_annotations', 'load_annotations',
    'load_lvis_annotations', 'lvis_class_names', 'names_from_ann_file', 'select_categories',
    'SIZE_STATS_FORMAT', 'SIZE_STATS_VERSION', 'class_frequency', 'compute_size_stats',
    'load_size_stats', 'save_size_stats', 'validate_size_stats', 'INDEX_COLUMNS',
    'SCHEMA_VERSION', 'BankReader', 'BankWriter', 'commit_part', 'decode_bgra', 'empty_index',
    'encode_bgra', 'finalize_bank', 'index_nbytes', 'list_parts', 'package_versions',
    'read_manifest', 'resize_bgra', 'safe_join'
]
