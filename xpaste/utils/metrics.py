"""LVIS metrics of mmengine work_dirs: reading, averaging over seeds, comparing runs.

mmengine writes the metrics of a run into its timestamped log folder ``<work_dir>/<timestamp>/``:

- ``tools/test.py``: ``<timestamp>.json``, one json object (``{"lvis/bbox_AP": 0.251, ...}``);
- ``tools/train.py`` with validation: ``vis_data/scalars.json``, one json object per line, the
  validation lines holding the ``lvis/*`` keys.

:func:`load_latest_metrics` takes the newest timestamp folder that holds LVIS metrics, the test
file before the validation lines of the same folder. mmdet's ``LVISMetric`` reports fractions in
[0, 1]; the tables show them in percent, as LVIS papers do.

A *run group* is one experimental row: one work_dir, or several (seeds), summarised by the mean
and the sample standard deviation (``ddof=1``) over its work_dirs. On the command line a group is
written ``[name=]DIR[,DIR...]``, where each ``DIR`` may be a glob (``work_dirs/x/seed*``).
"""
import glob
import json
import math
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

TASKS = ('bbox', 'segm')
TASK_TITLES = {'bbox': 'box', 'segm': 'mask'}
METRICS = ('AP', 'APr', 'APc', 'APf')
#: The metrics a comparison shows, in table order: box then mask; AP, APr, APc, APf.
METRIC_KEYS = tuple(f'lvis/{task}_{metric}' for task in TASKS for metric in METRICS)
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
_GLOB_CHARS = re.compile(r'[*?\[]')


@dataclass
class RunMetrics:
    """The LVIS metrics of one run.

    Attributes:
        work_dir (str): The work_dir given.
        source (str): The file the metrics were read from.
        kind (str): ``'test'`` (``tools/test.py``) or ``'val'`` (validation during training).
        metrics (dict[str, float]): ``lvis/*`` key -> value as logged (a fraction in [0, 1];
            NaN where LVIS logs -1, i.e. no category of that frequency group was evaluated).
        step (int, optional): Iteration or epoch of a validation line. Defaults to None.
    """
    work_dir: str
    source: str
    kind: str
    metrics: dict
    step: Optional[int] = None


@dataclass
class RunGroup:
    """One row of a comparison: a name and the runs (seeds) it averages.

    Attributes:
        name (str): Display name.
        runs (list[RunMetrics]): One per work_dir.
    """
    name: str
    runs: list = field(default_factory=list)

    @property
    def work_dirs(self) -> list:
        return [r.work_dir for r in self.runs]

    def values(self, key: str) -> np.ndarray:
        """The runs' values of ``key`` (NaN where a run lacks it)."""
        return np.array([r.metrics.get(key, math.nan) for r in self.runs], dtype=np.float64)

    def mean(self, key: str) -> float:
        """Mean over the runs of ``key``; NaN if a run lacks it."""
        values = self.values(key)
        return float(values.mean()) if len(values) else math.nan

    def std(self, key: str) -> float:
        """Sample standard deviation (``ddof=1``) of ``key`` over the runs; NaN for one run."""
        values = self.values(key)
        return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _read_json_objects(path: str) -> list:
    """The json objects of ``path``: a single object or one per line (mmengine's scalars)."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        obj = json.loads(text)
        return [obj] if isinstance(obj, dict) else []
    except json.JSONDecodeError:
        pass
    objects = []
    for num, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}:{num}: not a json line ({e.msg}): {line[:80]!r}') from None
        if isinstance(obj, dict):
            objects.append(obj)
    return objects


def _lvis_metrics(obj: dict) -> dict:
    """The ``lvis/*`` numbers of a json object; LVIS's -1 (no category of that frequency in the
    evaluated set) becomes NaN."""
    return {k: (float(v) if v >= 0 else math.nan) for k, v in obj.items()
            if k.startswith('lvis/') and isinstance(v, (int, float)) and not isinstance(v, bool)}


def timestamp_dirs(work_dir: str) -> list:
    """The ``YYYYMMDD_HHMMSS`` log folders of ``work_dir``, oldest first."""
    if not osp.isdir(work_dir):
        return []
    names = sorted(n for n in os.listdir(work_dir)
                   if _TIMESTAMP.match(n) and osp.isdir(osp.join(work_dir, n)))
    return [osp.join(work_dir, n) for n in names]


def load_latest_metrics(work_dir: str) -> RunMetrics:
    """The newest LVIS metrics of a work_dir.

    The timestamp folders are searched newest first; in each, ``<timestamp>.json`` (a test run)
    comes before the last ``lvis/*`` line of ``vis_data/scalars.json`` (validation).

    Args:
        work_dir (str): An mmengine work_dir (``--work-dir`` of ``tools/train.py`` or
            ``tools/test.py``).

    Returns:
        RunMetrics: The metrics and where they were read.

    Raises:
        FileNotFoundError: ``work_dir`` does not exist or holds no LVIS metrics (the message
            names it and the files looked for).
    """
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'work_dir not found: {work_dir!r}')
    for log_dir in reversed(timestamp_dirs(work_dir)):
        stamp = osp.basename(log_dir)
        test_file = osp.join(log_dir, f'{stamp}.json')
        if osp.isfile(test_file):
            for obj in reversed(_read_json_objects(test_file)):
                metrics = _lvis_metrics(obj)
                if metrics:
                    return RunMetrics(work_dir, test_file, 'test', metrics)
        scalars = osp.join(log_dir, 'vis_data', 'scalars.json')
        if osp.isfile(scalars):
            for obj in reversed(_read_json_objects(scalars)):
                metrics = _lvis_metrics(obj)
                if metrics:
                    step = obj.get('step')
                    return RunMetrics(work_dir, scalars, 'val', metrics,
                                      int(step) if isinstance(step, (int, float)) else None)
    raise FileNotFoundError(
        f'no LVIS metrics (lvis/* keys) in work_dir {work_dir!r}: looked for '
        '<timestamp>/<timestamp>.json (tools/test.py) and <timestamp>/vis_data/scalars.json '
        '(validation during training)')


def has_metrics(work_dir: str) -> bool:
    """Whether :func:`load_latest_metrics` finds LVIS metrics in ``work_dir``."""
    try:
        load_latest_metrics(work_dir)
    except FileNotFoundError:
        return False
    return True


def _default_name(items: Sequence[str]) -> str:
    """Name of a group from its paths: the last folder they share, glob parts cut off."""
    fixed = []
    for item in items:
        parts = osp.normpath(item).split(os.sep)
        keep = []
        for part in parts:
            if _GLOB_CHARS.search(part):
                break
            keep.append(part)
        fixed.append(os.sep.join(keep) or '.')
    try:
        common = osp.commonpath(fixed) if len(fixed) > 1 else fixed[0]
    except ValueError:  # absolute and relative paths mixed
        common = fixed[0]
    return osp.basename(osp.normpath(common)) or common


def parse_run_spec(spec: str) -> tuple:
    """Split ``[name=]DIR[,DIR...]`` (each ``DIR`` may be a glob) into a name and work_dirs.

    Args:
        spec (str): The group as written on the command line.

    Returns:
        tuple[str, list[str]]: The name (given, else the last folder the paths share, e.g.
        ``'baseline'`` for ``work_dirs/x/baseline/seed*``) and the work_dirs (globs expanded,
        sorted, in the order given).

    Raises:
        ValueError: Empty name, empty list, or a glob that matches no folder.
        FileNotFoundError: A named folder does not exist.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f'run spec must be "[name=]DIR[,DIR...]", got {spec!r}')
    name = None
    head, sep, rest = spec.partition('=')
    if sep and os.sep not in head and not osp.isdir(spec):
        name, spec = head.strip(), rest
        if not name:
            raise ValueError(f'run spec: empty name before "=" in {head + sep + rest!r}')
    items = [s.strip() for s in spec.split(',') if s.strip()]
    if not items:
        raise ValueError(f'run spec {spec!r} names no work_dir')
    dirs = []
    for item in items:
        if _GLOB_CHARS.search(item):
            matched = sorted(p for p in glob.glob(item) if osp.isdir(p))
            if not matched:
                raise ValueError(f'run spec: glob {item!r} matches no folder')
            dirs += matched
        else:
            if not osp.isdir(item):
                raise FileNotFoundError(f'run spec: work_dir not found: {item!r}')
            dirs.append(item)
    return name or _default_name(items), dirs


def load_group(spec: str, name: Optional[str] = None) -> RunGroup:
    """Read the metrics of every work_dir of a run spec (see :func:`parse_run_spec`).

    Args:
        spec (str): ``[name=]DIR[,DIR...]``.
        name (str, optional): Overrides the spec's name. Defaults to None.

    Returns:
        RunGroup: The group with one :class:`RunMetrics` per work_dir.
    """
    spec_name, dirs = parse_run_spec(spec)
    return RunGroup(name or spec_name, [load_latest_metrics(d) for d in dirs])


def select_baseline(groups: list, baseline: Union[int, str], specs: Sequence[str] = ()) -> int:
    """Index of the baseline among ``groups``.

    Args:
        groups (list[RunGroup]): The compared groups.
        baseline (int | str): An index (``'0'``, ``-1``), a group name, one of ``specs`` as
            written, or a work_dir of one of the groups.
        specs (Sequence[str]): The specs the groups were made from, in the same order.
            Defaults to ().

    Returns:
        int: A valid index into ``groups``.

    Raises:
        ValueError: ``baseline`` matches no group, or its name matches several.
    """
    if isinstance(baseline, bool):
        raise TypeError(f'baseline must be an index, a name or a work_dir, got {baseline!r}')
    text = str(baseline).strip()
    if re.fullmatch(r'-?\d+', text):
        index = int(text)
        if not -len(groups) <= index < len(groups):
            raise ValueError(f'baseline index {index} out of range for {len(groups)} runs')
        return index % len(groups)
    named = [i for i, g in enumerate(groups) if g.name == text]
    if len(named) > 1:
        raise ValueError(f'baseline {text!r}: several runs have this name; give its index')
    if named:
        return named[0]
    if text in specs:
        return list(specs).index(text)
    target = osp.normpath(osp.abspath(text))
    for i, group in enumerate(groups):
        if any(osp.normpath(osp.abspath(d)) == target for d in group.work_dirs):
            return i
    raise ValueError(f'baseline {baseline!r} is neither an index, nor a run name '
                     f'{[g.name for g in groups]}, nor a work_dir of the compared runs')


def summarize(groups: Sequence[RunGroup], baseline: int = 0,
              keys: Sequence[str] = METRIC_KEYS) -> list:
    """Mean, spread and delta to the baseline of every group, in percent.

    Args:
        groups (Sequence[RunGroup]): The rows.
        baseline (int): Index of the baseline row. Defaults to 0.
        keys (Sequence[str]): Metric keys. Defaults to :data:`METRIC_KEYS`.

    Returns:
        list[dict]: Per group: ``name``, ``n`` (runs), ``work_dirs``, ``sources``, ``kinds``,
        ``baseline`` (bool), and per key ``mean``, ``std`` (NaN for one run) and ``delta``
        (mean minus the baseline's mean), all in percent.
    """
    if not 0 <= baseline < len(groups):
        raise ValueError(f'baseline index {baseline} out of range for {len(groups)} runs')
    base = groups[baseline]
    rows = []
    for i, group in enumerate(groups):
        rows.append(dict(
            name=group.name, n=len(group.runs), baseline=i == baseline,
            work_dirs=group.work_dirs, sources=[r.source for r in group.runs],
            kinds=sorted({r.kind for r in group.runs}),
            mean={k: 100 * group.mean(k) for k in keys},
            std={k: 100 * group.std(k) for k in keys},
            delta={k: 100 * (group.mean(k) - base.mean(k)) for k in keys}))
    return rows


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return '-'
    return f'{value:+.1f}' if signed else f'{value:.1f}'


def column_title(key: str) -> str:
    """``'lvis/segm_APr'`` -> ``'mask APr'``."""
    task, _, metric = key.split('/', 1)[-1].partition('_')
    return f'{TASK_TITLES.get(task, task)} {metric}'


def format_markdown(rows: Sequence[dict], keys: Sequence[str] = METRIC_KEYS) -> str:
    """A Markdown table of :func:`summarize` rows.

    Each cell is ``mean ± std`` (the ``± std`` only for several runs) followed, except in the
    baseline row, by the delta to the baseline in parentheses; a missing value is ``-``.
    """
    header = ['run', 'n', *[column_title(k) for k in keys]]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * 2 + '---:|' * len(keys)]
    for row in rows:
        cells = [row['name'] + (' (reference)' if row['baseline'] else ''), str(row['n'])]
        for k in keys:
            cell = _fmt(row['mean'][k])
            if not math.isnan(row['std'][k]):
                cell += f' ± {_fmt(row["std"][k])}'
            if not row['baseline'] and not math.isnan(row['delta'][k]):
                cell += f' ({_fmt(row["delta"][k], signed=True)})'
            cells.append(cell)
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def to_jsonable(rows: Sequence[dict]) -> list:
    """:func:`summarize` rows with NaN replaced by None (valid JSON)."""
    def clean(obj):
        if isinstance(obj, float) and math.isnan(obj):
            return None
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj
    return clean(list(rows))


def plot_comparison(rows: Sequence[dict], out_file: str, keys: Sequence[str] = METRIC_KEYS,
                    title: Optional[str] = None) -> str:
    """Grouped bar chart of :func:`summarize` rows: one panel per task (box, mask), one group of
    bars per metric, one bar per run, error bars of one standard deviation.

    Args:
        rows (Sequence[dict]): The rows.
        out_file (str): PNG path (folders are created).
        keys (Sequence[str]): Metric keys. Defaults to :data:`METRIC_KEYS`.
        title (str, optional): Figure title. Defaults to None.

    Returns:
        str: ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = []
    for key in keys:
        task = key.split('/', 1)[-1].partition('_')[0]
        if task not in tasks:
            tasks.append(task)
    fig = Figure(figsize=(5 + 1.2 * len(rows), 4.2 * len(tasks)))
    FigureCanvasAgg(fig)
    width = 0.8 / max(len(rows), 1)
    for t, task in enumerate(tasks):
        ax = fig.add_subplot(len(tasks), 1, t + 1)
        task_keys = [k for k in keys if k.split('/', 1)[-1].startswith(task + '_')]
        x = np.arange(len(task_keys))
        for i, row in enumerate(rows):
            means = [row['mean'][k] for k in task_keys]
            stds = [0.0 if math.isnan(row['std'][k]) else row['std'][k] for k in task_keys]
            label = row['name'] + (' (reference)' if row['baseline'] else '')
            bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, means, width, yerr=stds,
                          capsize=3, label=label)
            ax.bar_label(bars, labels=[_fmt(m) for m in means], fontsize=7, padding=2)
        ax.set_xticks(x, [column_title(k).split(' ', 1)[1] for k in task_keys])
        ax.set_ylabel(f'{TASK_TITLES.get(task, task)} AP (%)')
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8, loc='best')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out_file, dpi=120)
    return out_file


def check_gain(variant: RunGroup, baseline: RunGroup, gain_key: str = 'lvis/segm_APr',
               keep_key: str = 'lvis/segm_APf', factor: float = 2.0) -> dict:
    """Does ``variant`` raise ``gain_key`` over ``baseline`` by more than ``factor`` times the
    seeds' spread, without lowering ``keep_key`` by more than the spread?

    The spread of a key is the larger of the two groups' standard deviations over their seeds
    (NaN, and the check fails, unless both groups have several runs).

    Returns:
        dict: ``gain``, ``gain_spread``, ``keep_delta``, ``keep_spread`` (percent), ``raised``,
        ``kept`` and ``passed`` (bools).
    """
    def spread(key):
        stds = (variant.std(key), baseline.std(key))
        return math.nan if any(math.isnan(s) for s in stds) else 100 * max(stds)
    gain = 100 * (variant.mean(gain_key) - baseline.mean(gain_key))
    keep = 100 * (variant.mean(keep_key) - baseline.mean(keep_key))
    gain_spread, keep_spread = spread(gain_key), spread(keep_key)
    raised = bool(gain > factor * gain_spread)  # False when a spread is NaN
    kept = bool(keep >= -keep_spread)
    return dict(gain_key=gain_key, keep_key=keep_key, factor=factor, gain=gain,
                gain_spread=gain_spread, keep_delta=keep, keep_spread=keep_spread,
                raised=raised, kept=kept, passed=raised and kept)
