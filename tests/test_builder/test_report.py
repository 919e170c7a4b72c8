import json

import numpy as np

from xpaste.builder.report import histogram, thumbnail, write_class_report, write_index

CAT = {'id': 7, 'name': 'red_plain_star', 'def': 'a red star'}


def item(index, reason='', score=25.0, area=0.3, status='ok'):
    return dict(index=index, chunk='c00000', pos=index, status=status, message='', file='x',
                height=40, width=40, prompt='a photo', seed=index, segmenter='classical',
                area=area, component=1.0, clip_score=score, image_score=20.0, reason=reason)


def filter_rec(items, threshold=21.0):
    counts = {'kept': sum(1 for i in items if not i['reason'])}
    for i in items:
        if i['reason']:
            counts[i['reason']] = counts.get(i['reason'], 0) + 1
    return dict(items=items, counts=counts, threshold=threshold,
                class_max=max((i['clip_score'] or 0) for i in items), dedup='clip')


def loader(item):
    if item['status'] != 'ok':
        return None, None
    image = np.full((40, 40, 3), 200, np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[5:25, 10:20] = True
    return image, mask


def test_thumbnail_is_the_cutout_at_the_thumb_size():
    image, mask = loader(item(0))
    thumb = thumbnail(image, mask, 16)
    assert thumb.shape == (16, 8, 4)
    assert thumbnail(image, None, 16).shape == (16, 16, 4)


def test_class_report_and_index(tmp_path):
    items = [item(0), item(1, score=30.0), item(2, 'clip_score', score=15.0),
             item(3, 'black_image', score=None, area=0.0, status='black'),
             item(4, 'duplicate', score=24.0)]
    summary = write_class_report(str(tmp_path), '00007-red_plain_star', CAT, filter_rec(items),
                                 loader, dict(thumb_side=32, max_kept=1, max_dropped=2),
                                 fp='abc')
    page = (tmp_path / 'classes' / '00007-red_plain_star.html').read_text()
    # the best kept cut-out is shown; dropped ones of two different reasons are shown
    assert 'thumbs/00007-red_plain_star/000001.png' in page
    assert 'thumbs/00007-red_plain_star/000000.png' not in page
    assert page.count('class="drop"') == 2 and 'clip_score' in page and 'black' in page
    assert (tmp_path / 'thumbs' / '00007-red_plain_star' / '000002.png').is_file()
    assert (tmp_path / 'hist' / '00007-red_plain_star.png').is_file()
    saved = json.loads((tmp_path / 'classes' / '00007-red_plain_star.json').read_text())
    assert saved == summary and saved['fingerprint'] == 'abc'
    assert saved['counts']['kept'] == 2 and saved['scores_kept'] == [25.0, 30.0]
    assert saved['segmenters'] == {'classical': 2}
    empty = dict(summary, key='00008-blue', name='blue', counts={'kept': 0, 'black_image': 3},
                 images=3, scores_kept=[], scores_dropped=[], area_kept=[], area_dropped=[])
    index = write_index(str(tmp_path), [summary, empty], dict(bins=10), title='toy',
                        build=dict(seed=0))
    html = open(index).read()
    assert 'href="classes/00007-red_plain_star.html"' in html
    assert '1 classes have no instance in the bank: blue' in html
    assert '<th>total</th><th>8</th><th>2</th>' in html
    assert (tmp_path / 'hist' / 'all_clip.png').is_file()


def test_histogram_without_values(tmp_path):
    path = tmp_path / 'h.png'
    histogram(str(path), [('kept', []), ('dropped', [float('nan')])], 'score', threshold=21)
    assert path.stat().st_size > 0
