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
    # Prompt templates over {name}, {synonym}, {definition} and the keys of attributes (lists
    # such as colour=[...], view=[...], setting=[...]; each template makes every combination of
    # the fields it uses); prompt_file: per-class prompts (json {name: [prompts]} or text lines
    # "name<TAB>prompt" / "name: prompt") that replace the templates for the classes it names
    # (prompt_file_mode='replace') or come before them ('add'); order: 'product' (as expanded)
    # or 'shuffle' (seeded per class); max_prompts: cap per class (None: all). Image i of a
    # class gets prompt i mod n, recorded with the image.
    prompts=dict(
        templates=['a photo of a single {name}'],
        prompt_file=None,
        attributes=None,
        max_prompts=None,
        order='product',
        prompt_file_mode='replace'),
    # Where images come from: a registered source (ToySource, FolderSource, DiffusersSource,
    # RoutedSource: one source per class by LVIS frequency or name, MixedSource: several
    # generators per class, drawn per image by weight) and its arguments; replaced as a whole by
    # a config.
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
    # 'phash', 'auto' (CLIP when scored) or None, with its cosine / Hamming thresholds;
    # real_similarity: None (off) or a dict of xpaste.builder.filters.RealSimilarity fields
    # (drop cut-outs whose CLIP similarity to the training set's own instances of their class
    # is below min_cosine or the class's percentile; needs CLIP scoring).
    filter=dict(
        min_clip=21.0,
        tolerance=1.0,
        min_area=0.05,
        max_area=0.95,
        min_component=0.0,
        dedup='auto',
        dedup_cosine=0.95,
        dedup_hamming=4,
        real_similarity=None),
    # Crops in the bank: image format and quality, longest side (None: as cut), bytes per
    # storage shard; size_stats: True = per-class size statistics from categories.ann_file, a
    # path = from that annotation file, False/None = none; keep_versions: superseded bank
    # versions kept after a rewrite switches to a new one (readers of the previous version go
    # on; None keeps all, 0 none).
    write=dict(
        image_format='webp', quality=95, max_side=512, shard_bytes=256 << 20, size_stats=True,
        keep_versions=1),
    # Report pages: thumbnail side, kept / dropped cut-outs shown per class, histogram bins.
    report=dict(thumb_side=128, max_kept=48, max_dropped=24, bins=30),
    # CPU worker pool of the streamed stages and of write: type 'process', 'thread' or None
    # (inline); max_pending: chunks in flight (a bounded queue), None -> 2 * num_workers;
    # start_method of worker processes.
    workers=dict(type='process', num_workers=2, max_pending=None, start_method='spawn'),
    # How the streamed stages keep a GPU generator busy (none of it changes what is written,
    # except device_scores, see below). background: finish chunks (GPU segmenters, CLIP, score
    # files, filter) in a thread of their own, with its own CUDA stream, while the main thread
    # only generates: 'auto' (when the source runs on the GPU), True or False. device_scores:
    # whole-image CLIP inputs made from the generator's images while they are still on the GPU
    # (bicubic antialiased resize, as open_clip's own preprocessing; the workers' OpenCV resize
    # otherwise; image scores differ by a fraction of a point): 'auto' (when they are on a
    # GPU), True or False. score_batch: CLIP inputs per forward pass, gathered across the
    # chunks waiting in the background finisher (None: score.batch_size). shared_memory:
    # images made in the main process reach worker processes through shared memory instead of
    # pickles.
    stream=dict(background='auto', device_scores='auto', score_batch=None, shared_memory=True),
    # Seconds a rank waits for other ranks' outputs (None: 0 for one rank, 24 h for several)
    # and seconds between checks.
    dist=dict(wait_timeout=None, poll_interval=10.0),
    # Progress bars (tqdm) per stage.
    progress=True,
)

# Options whose value replaces the default as a whole (a component config) rather than being
# merged key by key.
_REPLACED = ('source', 'score')
# Options added after banks were first built: while they keep these defaults (off) they are
# left out of the settings a bank records (build info, config hash), so a build that does not
# use them writes the same bank, byte for byte, as before they existed.
RECORDED_WHEN_SET = {
    'prompts': dict(attributes=None, max_prompts=None, order='product', prompt_file_mode='replace'),
    'filter': dict(real_similarity=None),
    'write': dict(keep_versions=1),
    'stream': dict(background='auto', device_scores='auto', score_batch=None, shared_memory=True),
}
# Sections added after banks were first built: left out of the recorded settings as a whole
# while all their options keep the defaults of RECORDED_WHEN_SET.
_ADDED_SECTIONS = ('stream', )
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


def recorded_options(cfg: dict) -> dict:
    """The merged settings as a bank records them: :data:`RECORDED_WHEN_SET` options left out
    while they keep their defaults.

    Args:
        cfg (dict): Settings from :func:`merge_defaults`.

    Returns:
        dict: A copy of ``cfg`` without those options.
    """
    out = _copy_cfg(dict(cfg))
    for section, defaults in RECORDED_WHEN_SET.items():
        if isinstance(out.get(section), dict):
            for key, default in defaults.items():
                if key in out[section] and out[section][key] == default:
                    del out[section][key]
            if section in _ADDED_SECTIONS and not out[section]:
                del out[section]
    return out
