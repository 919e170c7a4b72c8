"""Every option of a bank build, with its default, documented once (:data:`BUILD_DEFAULTS`).

A config (``configs/bank/*.py``) sets what it changes; :func:`merge_defaults` fills in the rest.
Code reads the merged settings by key and never restates a default.
"""

#: Every option of a bank build with its default; a config overrides what it sets.
BUILD_DEFAULTS = dict(
    # Directory of every stage's outputs; the tool sets ./work_dirs/<config name>.
    work_dir=None,
    # Where the bank is written; None -> <work_dir>/bank.
    bank_dir=None,
    # The classes of the build: an LVIS/COCO json with "categories" (ann_file) or a list of
    # names (names, ids 1..n); include/exclude name classes to keep/drop, max_classes keeps the
    # first ones by id.
    categories=dict(ann_file=None, names=None, include=None, exclude=None, max_classes=None),
    # Generators: images per class; image folders: at most this many per class (None: all).
    images_per_class=100,
    # Images per work unit (one file per stage and unit); a killed run loses at most the units
    # in flight.
    chunk_size=16,
    # Base seed; image i of class c gets derive_seed(seed, c, i), whatever the rank or batch.
    seed=0,
    # Prompt templates over {name}, {synonym}, {definition}; prompt_file: a json of per-class
    # prompts replacing the templates for the classes it names.
    prompts=dict(templates=['a photo of a single {name}'], prompt_file=None),
    # Where images come from: a registered source (ToySource, FolderSource, DiffusersSource)
    # and its arguments; replaced as a whole by a config.
    source=dict(type='ToySource'),
    # How generated images are kept on disk: 'png', 'jpg' or 'webp', and the jpg/webp quality.
    generate=dict(image_format='png', quality=95),
    # Segmenters run on every image (with several, the best CLIP cut-out wins per image);
    # largest_component: keep only the largest connected component of each mask.
    segment=dict(segmenters=[dict(type='ClassicalSegmenter')], largest_component=True),
    # CLIP scoring (open_clip model name and pretrained tag or checkpoint file); pretrained
    # None skips scoring; replaced as a whole by a config.
    score=dict(model='ViT-L-14', pretrained=None),
    # InstanceFilter arguments. X-Paste keeps a cut-out scoring >= min(min_clip, class max -
    # tolerance) (21 and 1 with CLIP ViT-L/14) with a mask area ratio in [min_area, max_area];
    # min_component: smallest share of the mask in its largest component; dedup: 'clip',
    # 'phash', 'auto' (CLIP when scored) or None, with its cosine / Hamming thresholds.
    filter=dict(
        min_clip=21.0,
        tolerance=1.0,
        min_area=0.05,
        max_area=0.95,
        min_component=0.0,
        dedup='auto',
        dedup_cosine=0.95,
        dedup_hamming=4),
    # Crops in the bank: image format and quality, longest side (None: as cut), bytes per
    # storage shard; size_stats: True = per-class size statistics from categories.ann_file, a
    # path = from that annotation file, False/None = none.
    write=dict(
        image_format='webp', quality=95, max_side=512, shard_bytes=256 << 20, size_stats=True),
    # Report pages: thumbnail side, kept / dropped cut-outs shown per class, histogram bins.
    report=dict(thumb_side=128, max_kept=48, max_dropped=24, bins=30),
    # CPU worker pool of the streamed stages and of write: type 'process', 'thread' or None
    # (inline); max_pending: chunks in flight (a bounded queue), None -> 2 * num_workers;
    # start_method of worker processes.
    workers=dict(type='process', num_workers=2, max_pending=None, start_method='spawn'),
    # Seconds a rank waits for other ranks' outputs (None: 0 for one rank, 24 h for several)
    # and seconds between checks.
    dist=dict(wait_timeout=None, poll_interval=10.0),
    # Progress bars (tqdm) per stage.
    progress=True,
)

# Options whose value replaces the default as a whole (a component config) rather than being
# merged key by key.
_REPLACED = ('source', 'score')
# Keys of an mmengine Config that are not build options.
_NOT_OPTIONS = ('filename', 'text', 'pretty_text', '_base_', 'custom_imports')


def _copy_cfg(obj):
    """Copy the containers of a config; other objects (e.g. a prebuilt model) are shared."""
    if isinstance(obj, dict):
        return {k: _copy_cfg(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copy_cfg(v) for v in obj)
    return obj


def merge_defaults(cfg: dict) -> dict:
    """:data:`BUILD_DEFAULTS` updated with ``cfg`` (one level deep for dict options).

    Args:
        cfg (dict | mmengine.Config): The settings a config gives.

    Returns:
        dict: Every option of :data:`BUILD_DEFAULTS`, ``cfg``'s values where it sets them.

    Raises:
        ValueError: an unknown top-level option (the message lists the known ones).
    """
    out = _copy_cfg(BUILD_DEFAULTS)
    for key, value in cfg.items():
        if key in _NOT_OPTIONS or key.startswith('_'):
            continue
        if key not in out:
            raise ValueError(f'unknown bank build option {key!r}; known: {sorted(out)}')
        if key in _REPLACED or not isinstance(out[key], dict) or value is None:
            out[key] = _copy_cfg(value)
        else:
            out[key].update(_copy_cfg(dict(value)))
    return out
