"""LVIS/COCO annotation files as plain json: loading, checking, category tables.

Everything here reads the json only; nothing needs mmdet, so the bank builder and the bank
reader use it without importing the detection side. :class:`AnnotationError` names the file,
the record and the field of the first problem, before anything else runs.
"""
import os
import os.path as osp
from collections.abc import Sequence
from typing import Optional

from mmengine.fileio import get_local_path, load

COCO_URL_PREFIX = 'http://images.cocodataset.org/'

REQUIRED_FIELDS = {
    'images': ('id', 'height', 'width'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox'),
    'categories': ('id', 'name'),
}
# Fields LVIS evaluation (lvis.LVISEval, used by mmdet's LVISMetric) reads as well.
LVIS_EVAL_FIELDS = {
    'images': ('neg_category_ids', 'not_exhaustive_category_ids'),
    'categories': ('frequency', ),
}


class AnnotationError(ValueError):
    """An annotation file that cannot be used as it is."""


def check_lvis_annotations(data: dict, ann_file: str, for_evaluation: bool = False) -> None:
    """Check an LVIS/COCO-format annotation dict and raise :class:`AnnotationError` naming the
    file, record and field of the first problem.

    Args:
        data (dict): The loaded json.
        ann_file (str): Its path, used in messages.
        for_evaluation (bool): Also require the fields LVIS evaluation reads
            (``neg_category_ids``, ``not_exhaustive_category_ids``, ``frequency``).
            Defaults to False.
    """
    if not isinstance(data, dict):
        raise AnnotationError(f'{ann_file}: expected a json object with images, annotations and '
                              f'categories, got {type(data).__name__}')
    required = {k: list(v) for k, v in REQUIRED_FIELDS.items()}
    if for_evaluation:
        for key, fields in LVIS_EVAL_FIELDS.items():
            required[key] += fields
    for key, fields in required.items():
        if key not in data:
            raise AnnotationError(f'{ann_file}: missing top-level field {key!r}')
        if not isinstance(data[key], list):
            raise AnnotationError(f'{ann_file}: field {key!r} must be a list, '
                                  f'got {type(data[key]).__name__}')
        for i, record in enumerate(data[key]):
            missing = [f for f in fields if f not in record]
            if missing:
                rid = record.get('id', f'#{i}')
                raise AnnotationError(f'{ann_file}: {key}[{i}] (id={rid}) is missing field(s) '
                                      f'{missing}')
    for i, img in enumerate(data['images']):
        if 'coco_url' not in img and 'file_name' not in img:
            raise AnnotationError(f'{ann_file}: images[{i}] (id={img["id"]}) has neither '
                                  f'"coco_url" nor "file_name"')
    image_ids = {img['id'] for img in data['images']}
    cat_ids = {cat['id'] for cat in data['categories']}
    names = [cat['name'] for cat in data['categories']]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise AnnotationError(f'{ann_file}: duplicate category names {dup}')
    for i, ann in enumerate(data['annotations']):
        if ann['image_id'] not in image_ids:
            raise AnnotationError(f'{ann_file}: annotations[{i}] (id={ann["id"]}) has image_id='
                                  f'{ann["image_id"]!r}, which is not in "images"')
        if ann['category_id'] not in cat_ids:
            raise AnnotationError(f'{ann_file}: annotations[{i}] (id={ann["id"]}) has '
                                  f'category_id={ann["category_id"]!r}, which is not in '
                                  f'"categories" (ids {min(cat_ids)}..{max(cat_ids)})')


def load_lvis_annotations(ann_file: str, for_evaluation: bool = False,
                          backend_args: Optional[dict] = None) -> dict:
    """Load and check an LVIS/COCO-format json (see :func:`check_lvis_annotations`)."""
    if not osp.isfile(ann_file) and '://' not in str(ann_file):
        raise FileNotFoundError(f'annotation file not found: {ann_file!r} (check data_root and '
                                f'ann_file in the config)')
    with get_local_path(ann_file, backend_args=backend_args) as local_path:
        data = load(local_path, file_format='json')
    check_lvis_annotations(data, ann_file, for_evaluation)
    return data


def lvis_class_names(data: dict) -> tuple:
    """Class names in label order: categories sorted by id (mmdet's LVIS label order)."""
    return tuple(c['name'] for c in sorted(data['categories'], key=lambda c: c['id']))


def names_from_ann_file(ann_file: str) -> Sequence[str]:
    """Class names of an LVIS/COCO-format json, in label order."""
    return lvis_class_names(load_lvis_annotations(ann_file))


def load_annotations(ann) -> dict:
    """Load and check a COCO/LVIS annotation JSON, or check an already loaded dict.

    Args:
        ann (str | dict): Path to the JSON file or the loaded dict.

    Returns:
        dict: The annotation dict (checked by
        :func:`check_lvis_annotations`).
    """
    if isinstance(ann, (str, os.PathLike)):
        return load_lvis_annotations(os.fspath(ann))
    check_lvis_annotations(ann, 'annotation dict')
    return ann


def select_categories(data: dict, categories: Sequence[str] | None, where: str):
    """The json's categories, restricted to ``categories`` (names) if given, and a map from
    category id to position in that list; unknown names raise ``ValueError`` naming ``where``."""
    cats = data['categories']
    names = [c['name'] for c in cats]
    if categories is not None:
        known = set(names)
        unknown = [n for n in categories if n not in known]
        if unknown:
            raise ValueError(f'{where}: unknown categories {unknown[:10]} '
                             f'({len(unknown)} not in the file\'s {len(names)} categories)')
        wanted = set(categories)
        cats = [c for c in cats if c['name'] in wanted]
    id_to_pos = {c['id']: i for i, c in enumerate(cats)}
    return cats, id_to_pos
