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
from typing import List

from mmdet.datasets import LVISV1Dataset
from mmdet.registry import DATASETS

from xpaste.bank.annotations import (COCO_URL_PREFIX, AnnotationError, check_lvis_annotations,
                                     load_lvis_annotations, lvis_class_names, names_from_ann_file)

__all__ = ['LVISV1JsonDataset', 'AnnotationError', 'COCO_URL_PREFIX', 'check_lvis_annotations',
           'load_lvis_annotations', 'lvis_class_names', 'names_from_ann_file']


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
