"""tools/data/lvis_class_frequency.py: image count per class for the federated loss."""
import json

import pytest

from tools.data import lvis_class_frequency as tool
from xpaste.models import load_class_frequency


def _ann(tmp_path, with_image_count):
    cats = [dict(id=7, name='zebra', frequency='r'), dict(id=2, name='apple', frequency='f'),
            dict(id=4, name='kite', frequency='c')]
    if with_image_count:
        for c, n in zip(cats, (11, 22, 33)):
            c['image_count'] = n
    images = [dict(id=i, file_name=f'{i}.jpg', height=10, width=10) for i in range(1, 4)]
    anns = [dict(id=1, image_id=1, category_id=2, bbox=[0, 0, 1, 1], area=1),
            dict(id=2, image_id=1, category_id=2, bbox=[0, 0, 1, 1], area=1),
            dict(id=3, image_id=2, category_id=2, bbox=[0, 0, 1, 1], area=1),
            dict(id=4, image_id=3, category_id=7, bbox=[0, 0, 1, 1], area=1)]
    path = tmp_path / 'train.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    return str(path)


def test_counts_images_per_class_in_id_order(tmp_path):
    out = tmp_path / 'cat_info.json'
    records = tool.main([_ann(tmp_path, False), '--out', str(out)])
    assert [r['name'] for r in records] == ['apple', 'kite', 'zebra']
    # apple: images 1 and 2 (two annotations in image 1 count once); kite: none
    assert [r['image_count'] for r in records] == [2, 0, 1]
    assert [r['frequency'] for r in records] == ['f', 'c', 'r']
    assert json.loads(out.read_text()) == records
    assert load_class_frequency(str(out), 3).tolist() == [2.0, 0.0, 1.0]


def test_uses_lvis_image_count_when_present(tmp_path):
    out = tmp_path / 'cat_info.json'
    records = tool.main([_ann(tmp_path, True), '--out', str(out)])
    assert [r['image_count'] for r in records] == [22, 33, 11]


def test_requires_out(tmp_path):
    with pytest.raises(SystemExit):
        tool.main([_ann(tmp_path, False)])
