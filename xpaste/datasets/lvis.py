"""LVIS-format datasets whose class names come from the annotation file.

mmdet's ``LVISV1Dataset`` hard-codes the 1203 LVIS v1 class names; a dataset in LVIS format with
other categories (the toy world, an LVIS subset) would need them copied into every config.
:class:`LVISV1JsonDataset` reads them from the json's ``categories`` instead, and checks the file
before training starts: a missing field or an annotation pointing at an unknown image or category
is reported with the file, the record and the field, instead of a ``KeyError`` deep inside a
dataloader worker.
"""
import os.path as osp
from collections import defaultdict
from typing import List, Optional, Sequence

from mmengine.fileio import get_local_path, load
from mmdet.datasets import LVISV1Dataset
from mmdet.registry import DATASETS

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


@DATASETS.register_module()
class LVISV1JsonDataset(LVISV1Dataset):
    """mmdet's ``LVISV1Dataset`` with class names read from the annotation file.

    Labels are the categories in id order, as in ``LVISV1Dataset``. If ``metainfo`` gives
    ``classes``, they must equal the json's names (order included), else an error lists the
    difference. Image paths come from ``coco_url`` (LVIS) with ``http://images.cocodataset.org/``
    stripped, or from ``file_name`` (COCO), joined to ``data_prefix['img']``.

    Args:
        check_eval_fields (bool): Also require the fields LVIS evaluation needs
            (``neg_category_ids``, ``not_exhaustive_category_ids``, ``frequency``).
            Defaults to False.
        **kwargs: As :class:`mmdet.datasets.LVISV1Dataset`.
    """

    def __init__(self, *args, check_eval_fields: bool = False, **kwargs):
        self.check_eval_fields = check_eval_fields
        self._annotations = None
        ann_file = kwargs.get('ann_file', args[0] if args else '')
        data_root = kwargs.get('data_root')
        if data_root is not None and ann_file and not osp.isabs(ann_file):
            ann_file = osp.join(data_root, ann_file)
        if not ann_file:
            raise ValueError('LVISV1JsonDataset needs ann_file')
        self._annotations = load_lvis_annotations(ann_file, check_eval_fields,
                                                  kwargs.get('backend_args'))
        names = lvis_class_names(self._annotations)
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        given = metainfo.get('classes')
        if given is not None and tuple(given) != names:
            missing = sorted(set(names) - set(given))
            extra = sorted(set(given) - set(names))
            raise ValueError(
                f'metainfo classes do not match the categories of {ann_file}: '
                f'missing {missing[:10]}, unknown {extra[:10]}'
                + ('' if missing or extra else ' (same names, different order: use id order)'))
        metainfo['classes'] = names
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Build the data list from the already loaded and checked annotations."""
        data = self._annotations
        img_dir = self.data_prefix.get('img', '')
        if img_dir and '://' not in img_dir and not osp.isdir(img_dir):
            raise FileNotFoundError(f'image folder not found: {img_dir!r} (data_prefix.img of '
                                    f'{self.ann_file})')
        cats = sorted(data['categories'], key=lambda c: c['id'])
        self.cat_ids = [c['id'] for c in cats]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        anns_by_img = defaultdict(list)
        for ann in data['annotations']:
            anns_by_img[ann['image_id']].append(ann)
        self.cat_img_map = defaultdict(list)
        for img_id, anns in anns_by_img.items():
            for cat_id in {a['category_id'] for a in anns}:
                self.cat_img_map[cat_id].append(img_id)

        data_list = []
        for img in data['images']:
            raw_img_info = dict(img, img_id=img['id'])
            if 'coco_url' in img:
                raw_img_info['file_name'] = img['coco_url'].replace(COCO_URL_PREFIX, '')
            data_list.append(self.parse_data_info(
                dict(raw_img_info=raw_img_info, raw_ann_info=anns_by_img.get(img['id'], []))))
        self._annotations = None  # not needed any more; keep workers light
        return data_list


def names_from_ann_file(ann_file: str) -> Sequence[str]:
    """Class names of an LVIS/COCO-format json, in label order."""
    return lvis_class_names(load_lvis_annotations(ann_file))
