"""What went into a bank: counts, score histograms and contact sheets, as static HTML.

Layout under the report directory (every link relative, so the folder can be copied)::

    index.html               per-class table (kept, dropped by reason), global histograms
    hist/all_clip.png        CLIP scores of every cut-out, kept vs dropped
    hist/all_area.png        mask area ratios, kept vs dropped
    classes/<key>.html       contact sheet of a class: kept and dropped thumbnails with scores
    classes/<key>.json       the class's summary (also the stage's done marker)
    hist/<key>.png           the class's score (or area) histogram with its threshold
    hist/<key>_gen.png       the class's scores per generator (composite sources)
    hist/all_generators.png  CLIP scores of every cut-out per generator (composite sources)
    thumbs/<key>/<i>.png     RGBA thumbnails

With a composite source (:mod:`~xpaste.builder.multi_source`), the pages also count images, kept
cut-outs and drop reasons per generator; with the filter by similarity to real instances, the
class page gives the class's real-instance count and threshold.

Figures use matplotlib's object API with the Agg canvas (no display, no global backend).
"""
import html
import json
import os
import os.path as osp
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from xpaste.utils.fileio import atomic_write_bytes, atomic_write_json
from .filters import DROP_REASONS
from .prompts import display_name
from .segmenters import mask_box
from xpaste.bank import resize_bgra

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
.cell { width: SIDEpx; font-size: 11px; text-align: center; }
.thumb { width: SIDEpx; height: SIDEpx; display: flex; align-items: center;
  justify-content: center; background-color: #fff;
  background-image: linear-gradient(45deg, #ddd 25%, transparent 25%),
    linear-gradient(-45deg, #ddd 25%, transparent 25%),
    linear-gradient(45deg, transparent 75%, #ddd 75%),
    linear-gradient(-45deg, transparent 75%, #ddd 75%);
  background-size: 12px 12px; background-position: 0 0, 0 6px, 6px -6px, -6px 0; }
.thumb img { max-width: 100%; max-height: 100%; }
.drop { color: #b00; } .none { color: #888; font-style: italic; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 12px; overflow-x: auto; }
"""


def _fmt(value, digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _mean(values: Sequence[float]) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _page(title: str, body: str, side: int) -> str:
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f'</title><style>{_CSS.replace("SIDE", str(side))}</style></head>\n<body>\n{body}\n'
            '</body></html>\n')


def thumbnail(image: np.ndarray, mask: Optional[np.ndarray], side: int) -> np.ndarray:
    """A BGRA thumbnail: the cut-out cropped to its box when there is a mask, else the image;
    longest side ``side``."""
    if mask is not None and mask.any():
        x, y, w, h = mask_box(mask)
        bgra = np.dstack([image, mask.astype(np.uint8) * 255])[y:y + h, x:x + w]
    else:
        bgra = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    h, w = bgra.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        bgra = resize_bgra(
            np.ascontiguousarray(bgra), (max(1, round(w * scale)), max(1, round(h * scale))))
    return bgra


def histogram(path: str,
              groups: Sequence[tuple[str, Sequence[float]]],
              xlabel: str,
              bins: int = 30,
              threshold: Optional[float] = None,
              title: Optional[str] = None) -> None:
    """Save an overlaid histogram of ``groups`` (label, values) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.0, 2.8), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = [np.asarray(v, float) for _, v in groups]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        for (label, _), v in zip(groups, values):
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=edges, alpha=0.6, label=f'{label} ({v.size})')
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, 'no values', ha='center', va='center', transform=ax.transAxes)
    if threshold is not None:
        ax.axvline(threshold, color='k', linestyle='--', linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel('cut-outs')
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.tmp-{os.getpid()}.png'
    fig.savefig(tmp)
    os.replace(tmp, path)


def generator_summary(items: list[dict]) -> dict:
    """Per generator (``item['generator']``), the images, kept cut-outs, drop reasons and CLIP
    scores of a class's filter items; {} when no item names a generator (a single source)."""
    if not any(i.get('generator') for i in items):
        return {}
    out: dict = {}
    for i in items:
        g = out.setdefault(
            i.get('generator') or '-',
            dict(images=0, kept=0, dropped={}, scores_kept=[], scores_dropped=[]))
        g['images'] += 1
        if i['reason']:
            g['dropped'][i['reason']] = g['dropped'].get(i['reason'], 0) + 1
        else:
            g['kept'] += 1
        if i['clip_score'] is not None:
            g['scores_dropped' if i['reason'] else 'scores_kept'].append(i['clip_score'])
    return dict(sorted(out.items()))


def merge_generator_summaries(summaries: Sequence[dict]) -> dict:
    """The per-generator summaries of several classes added up."""
    total: dict = {}
    for summary in summaries:
        for name, g in summary.items():
            t = total.setdefault(
                name, dict(images=0, kept=0, dropped={}, scores_kept=[], scores_dropped=[]))
            t['images'] += g['images']
            t['kept'] += g['kept']
            for reason, n in g['dropped'].items():
                t['dropped'][reason] = t['dropped'].get(reason, 0) + n
            t['scores_kept'] += g['scores_kept']
            t['scores_dropped'] += g['scores_dropped']
    return dict(sorted(total.items()))


def generator_table(gens: dict) -> str:
    """An HTML table of per-generator counts and mean scores."""
    reasons = [r for r in DROP_REASONS if any(g['dropped'].get(r) for g in gens.values())]
    head = ''.join(f'<th>{h}</th>' for h in ('generator', 'images', 'kept', *reasons,
                                                'mean kept score', 'mean score'))
    rows = []
    for name, g in gens.items():
        scores = g['scores_kept'] + g['scores_dropped']
        cells = [f'<td class="name">{html.escape(name)}</td>', f'<td>{g["images"]}</td>',
                 f'<td>{g["kept"]}</td>']
        cells += [f'<td>{g["dropped"].get(r, 0) or ""}</td>' for r in reasons]
        cells += [f'<td>{_fmt(_mean(g["scores_kept"]))}</td>', f'<td>{_fmt(_mean(scores))}</td>']
        rows.append(f'<tr>{"".join(cells)}</tr>')
    return f'<table><tr>{head}</tr>{"".join(rows)}</table>'


def generator_histogram(path: str, gens: dict, bins: int, threshold: Optional[float] = None,
                        title: Optional[str] = None) -> bool:
    """Save the CLIP scores of every cut-out per generator (False, nothing saved, without
    scores)."""
    groups = [(name, g['scores_kept'] + g['scores_dropped']) for name, g in gens.items()]
    if not any(v for _, v in groups):
        return False
    histogram(path, groups, 'CLIP score of the cut-out, per generator', bins, threshold, title)
    return True


def _pick_dropped(items: list[dict], limit: int) -> list[dict]:
    """Up to ``limit`` dropped items, taking the reasons in turn so each one is shown."""
    by_reason: dict[str, list] = {}
    for item in items:
        by_reason.setdefault(item['reason'], []).append(item)
    picked, queues = [], [list(v) for v in by_reason.values()]
    while len(picked) < limit and any(queues):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return picked


def write_class_report(report_dir: str,
                       key: str,
                       category: dict,
                       filter_rec: dict,
                       load: Callable[[dict], tuple],
                       cfg: dict,
                       fp: str = '') -> dict:
    """Write the contact sheet, histogram and summary of one class.

    Args:
        report_dir (str): The report directory.
        key (str): File-system name of the class.
        category (dict): The category (``id``, ``name``, optional ``def``).
        filter_rec (dict): The class's filter output (items with reason and scores, counts,
            threshold).
        load (callable): ``load(item) -> (image, mask)`` for a filter item (None when absent).
        cfg (dict): ``thumb_side``, ``max_kept``, ``max_dropped``, ``bins``.
        fp (str): Fingerprint stored in the summary (done marker). Defaults to ''.

    Returns:
        dict: The class summary written to ``classes/<key>.json``.
    """
    side = int(cfg.get('thumb_side', 128))
    items = filter_rec['items']
    kept = [i for i in items if not i['reason']]
    dropped = [i for i in items if i['reason']]
    kept_sorted = sorted(
        kept,
        key=lambda i: (-(i['clip_score'] if i['clip_score'] is not None else -1e9), i['index']))
    shown_kept = kept_sorted[:int(cfg.get('max_kept', 48))]
    shown_dropped = _pick_dropped(dropped, int(cfg.get('max_dropped', 24)))
    thumb_dir = osp.join(report_dir, 'thumbs', key)

    def cell(item: dict) -> str:
        image, mask = load(item)
        if image is not None:
            ok, buf = cv2.imencode('.png', thumbnail(image, mask, side))
            rel = f'{item["index"]:06d}.png'
            atomic_write_bytes(osp.join(thumb_dir, rel), buf.tobytes())
            img = f'<img src="../thumbs/{html.escape(key)}/{rel}" loading="lazy">'
        else:
            img = f'<span class="none">{html.escape(item["status"])}</span>'
        caption = [f'#{item["index"]}']
        if item['clip_score'] is not None:
            caption.append(f'clip {item["clip_score"]:.1f}')
        caption.append(f'area {item["area"]:.2f}')
        if item['segmenter']:
            caption.append(html.escape(item['segmenter']))
        reason = (f'<br><span class="drop">{html.escape(item["reason"])}</span>'
                  if item['reason'] else '')
        tip = html.escape(item.get('prompt') or item.get('message') or '', quote=True)
        return (f'<div class="cell" title="{tip}"><div class="thumb">{img}</div>'
                f'{" ".join(caption)}{reason}</div>')

    scores = [i['clip_score'] for i in items]
    scored = any(s is not None for s in scores)
    hist_rel = f'{key}.png'
    if scored:
        histogram(
            osp.join(report_dir, 'hist', hist_rel),
            [('kept', [i['clip_score'] for i in kept if i['clip_score'] is not None]),
             ('dropped', [i['clip_score'] for i in dropped if i['clip_score'] is not None])],
            'CLIP score of the cut-out',
            int(cfg.get('bins', 30)),
            filter_rec['threshold'],
            title=display_name(category['name']))
    else:
        histogram(
            osp.join(report_dir, 'hist', hist_rel),
            [('kept', [i['area'] for i in kept]),
             ('dropped', [i['area'] for i in dropped if i['area'] > 0])],
            'mask area / image area (no CLIP scores)',
            int(cfg.get('bins', 30)),
            title=display_name(category['name']))
    gens = generator_summary(items)
    gen_html = ''
    if gens:
        gen_rel = f'{key}_gen.png'
        plotted = generator_histogram(
            osp.join(report_dir, 'hist', gen_rel), gens, int(cfg.get('bins', 30)),
            filter_rec['threshold'], title=display_name(category['name']))
        gen_html = (f'<h2>Per generator</h2>\n{generator_table(gens)}\n' +
                    (f'<p><img src="../hist/{html.escape(gen_rel)}"></p>\n' if plotted else ''))
    real = filter_rec.get('real')
    real_html = ''
    if real is not None:
        real_html = (f'<p>{real["count"]} real instances of the class; similarity threshold '
                     f'{_fmt(real["threshold"], 3)}'
                     f'{" (too few: text score only)" if real["threshold"] is None else ""}</p>\n')
    counts = filter_rec['counts']
    rows = ''.join(f'<tr><td class="name">{r}</td><td>{counts.get(r, 0)}</td></tr>'
                   for r in ('kept', *DROP_REASONS) if counts.get(r, 0) or r == 'kept')
    name = html.escape(category['name'])
    definition = html.escape(category.get('def') or '')
    body = (f'<p><a href="../index.html">&larr; all classes</a></p>\n'
            f'<h1>{name} <small>(id {category["id"]})</small></h1>\n<p>{definition}</p>\n'
            f'<p>{len(items)} images; score threshold {_fmt(filter_rec["threshold"])}, best '
            f'score {_fmt(filter_rec["class_max"])}, duplicates by '
            f'{html.escape(str(filter_rec["dedup"]))}</p>\n{real_html}'
            f'<table><tr><th>outcome</th><th>cut-outs</th></tr>{rows}</table>\n'
            f'<p><img src="../hist/{html.escape(hist_rel)}"></p>\n{gen_html}'
            f'<h2>Kept ({len(kept)}, best {len(shown_kept)} shown)</h2>\n'
            f'<div class="grid">{"".join(cell(i) for i in shown_kept)}</div>\n'
            f'<h2>Dropped ({len(dropped)}, {len(shown_dropped)} shown)</h2>\n'
            f'<div class="grid">{"".join(cell(i) for i in shown_dropped)}</div>\n')
    page = _page(category['name'], body, side)
    atomic_write_bytes(osp.join(report_dir, 'classes', f'{key}.html'), page.encode())
    kept_scores = [i['clip_score'] for i in kept if i['clip_score'] is not None]
    summary = dict(
        fingerprint=fp,
        key=key,
        id=category['id'],
        name=category['name'],
        images=len(items),
        counts=counts,
        threshold=filter_rec['threshold'],
        class_max=filter_rec['class_max'],
        mean_kept_score=float(np.mean(kept_scores)) if kept_scores else None,
        segmenters={
            s: sum(1 for i in kept if i['segmenter'] == s)
            for s in sorted({i['segmenter']
                             for i in kept})
        },
        scores_kept=kept_scores,
        scores_dropped=[i['clip_score'] for i in dropped if i['clip_score'] is not None],
        area_kept=[round(i['area'], 4) for i in kept],
        area_dropped=[round(i['area'], 4) for i in dropped if i['area'] > 0])
    if gens:
        summary['generators'] = gens
    atomic_write_json(osp.join(report_dir, 'classes', f'{key}.json'), summary)
    return summary


def write_index(report_dir: str,
                summaries: Sequence[dict],
                cfg: dict,
                title: str = 'bank',
                build: Optional[dict] = None) -> str:
    """Write ``index.html``: the per-class table and the global histograms.

    Args:
        report_dir (str): The report directory.
        summaries (Sequence[dict]): Class summaries from :func:`write_class_report`.
        cfg (dict): ``bins``, ``thumb_side``.
        title (str): Page title. Defaults to ``'bank'``.
        build (dict, optional): Build settings shown at the bottom. Defaults to None.

    Returns:
        str: Path of ``index.html``.
    """
    bins = int(cfg.get('bins', 30))
    scored = any(c['scores_kept'] or c['scores_dropped'] for c in summaries)
    if scored:
        histogram(
            osp.join(report_dir, 'hist', 'all_clip.png'),
            [('kept', [s for c in summaries for s in c['scores_kept']]),
             ('dropped', [s for c in summaries for s in c['scores_dropped']])],
            'CLIP score of the cut-out',
            bins,
            title='all classes')
    histogram(
        osp.join(report_dir, 'hist', 'all_area.png'),
        [('kept', [s for c in summaries for s in c['area_kept']]),
         ('dropped', [s for c in summaries for s in c['area_dropped']])],
        'mask area / image area',
        bins,
        title='all classes')
    reasons = [r for r in DROP_REASONS if any(c['counts'].get(r, 0) for c in summaries)]
    head = ''.join(f'<th>{r}</th>'
                   for r in ('class', 'images', 'kept', *reasons, 'threshold', 'mean kept score'))
    rows, totals = [], {k: 0 for k in ('images', 'kept', *reasons)}
    for c in summaries:
        cells = [
            f'<td class="name"><a href="classes/{html.escape(c["key"])}.html">'
            f'{html.escape(c["name"])}</a></td>', f'<td>{c["images"]}</td>',
            f'<td>{c["counts"].get("kept", 0)}</td>'
        ]
        cells += [f'<td>{c["counts"].get(r, 0) or ""}</td>' for r in reasons]
        cells += [f'<td>{_fmt(c["threshold"])}</td>', f'<td>{_fmt(c["mean_kept_score"])}</td>']
        rows.append(f'<tr>{"".join(cells)}</tr>')
        totals['images'] += c['images']
        for k in ('kept', *reasons):
            totals[k] += c['counts'].get(k, 0)
    total_row = ('<tr><th>total</th>' + ''.join(f'<th>{totals[k]}</th>'
                                                for k in ('images', 'kept', *reasons)) +
                 '<th></th><th></th></tr>')
    empty = [c['name'] for c in summaries if not c['counts'].get('kept', 0)]
    warn = (f'<p class="drop">{len(empty)} classes have no instance in the bank: '
            f'{html.escape(", ".join(empty[:30]))}{" ..." if len(empty) > 30 else ""}</p>'
            if empty else '')
    build_txt = (f'<h2>Build</h2><pre>{html.escape(json.dumps(build, indent=1))}</pre>'
                 if build else '')
    gens = merge_generator_summaries([c.get('generators', {}) for c in summaries])
    gen_html = ''
    if gens:
        plotted = generator_histogram(
            osp.join(report_dir, 'hist', 'all_generators.png'), gens, bins, title='all classes')
        gen_html = (f'<h2>Per generator</h2>\n{generator_table(gens)}\n' +
                    ('<p><img src="hist/all_generators.png"></p>\n' if plotted else ''))
    body = (f'<h1>Instance bank report: {html.escape(title)}</h1>\n'
            f'<p>{len(summaries)} classes, {totals["images"]} images, {totals["kept"]} cut-outs '
            f'kept.</p>\n{warn}\n' +
            ('<p><img src="hist/all_clip.png"> '
             if scored else '<p class="none">CLIP scoring was skipped: no scores.</p>\n<p>') +
            '<img src="hist/all_area.png"></p>\n'
            f'<table><tr>{head}</tr>{"".join(rows)}{total_row}</table>\n{gen_html}'
            f'{build_txt}\n')
    path = osp.join(report_dir, 'index.html')
    atomic_write_bytes(
        path,
        _page(f'bank report: {title}', body, int(cfg.get('thumb_side', 128))).encode())
    return path
