"""Builds that are killed, preempted or find damaged files: what survives and how they resume.

Subprocess tests run ``tools/bank/build.py`` on a tiny toy world and signal it when a file
appears (a slowed-down source or a paused stream keep the build running meanwhile).
"""
import glob
import hashlib
import json
import logging
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger
from test_pipeline import NUM_CLASSES, bank_rows, build, make_cfg, toy_json  # noqa: F401

from xpaste.bank import BankReader, check_bank
from xpaste.builder import jobs
from xpaste.builder.integrity import image_problem
from xpaste.builder.interrupt import BuildInterrupted, StopRequest, stop_on_signals
from xpaste.builder.pipeline import BankBuilder
from xpaste.builder.progress import RankProgress

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def fresh_build(toy_json, work):  # noqa: F811
    """A finished build in ``work`` (the bank dir is part of the write fingerprints, so a
    copied build would be written again)."""
    build(make_cfg(work, toy_json))
    return work


def file_hashes(root):
    """sha256 of every file under ``root``, by relative path."""
    out = {}
    for path in sorted(glob.glob(osp.join(root, '**'), recursive=True)):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


class LogRecords(logging.Handler):
    """Collects the messages of the current mmengine logger."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        MMLogger.get_current_instance().addHandler(self)
        return self

    def __exit__(self, *exc):
        MMLogger.get_current_instance().removeHandler(self)


# ------------------------------------------------------------------ subprocess helpers
SCRIPT = '''
import sys, time
{patch}
from tools.bank.build import main
if __name__ == '__main__':  # worker processes import this file too
    main(sys.argv[1:])
'''

#: Each chunk of the toy source takes at least this long (the build stays alive for a signal).
SLOW_SOURCE = '''
from xpaste.builder.sources import ToySource
_generate = ToySource.generate
def slow_generate(self, *args, **kwargs):
    time.sleep({delay})
    return _generate(self, *args, **kwargs)
ToySource.generate = slow_generate
'''


def write_config(path, cfg):
    path.write_text('\n'.join(f'{k} = {v!r}' for k, v in cfg.items()))
    return str(path)


def start_build(tmp_path, cfg_path, *args, patch=''):
    """``tools/bank/build.py`` in a subprocess after ``patch``; its output goes to files (a
    process left behind would hold a pipe open)."""
    script = tmp_path / 'run_build.py'
    script.write_text(SCRIPT.format(patch=textwrap.dedent(patch)))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    with open(tmp_path / 'stdout.txt', 'w') as out, open(tmp_path / 'stderr.txt', 'w') as err:
        return subprocess.Popen([sys.executable, str(script), cfg_path, '--no-progress', *args],
                                cwd=REPO, env=env, stdout=out, stderr=err)


def stderr_of(proc, tmp_path, timeout=120):
    proc.wait(timeout)
    return (tmp_path / 'stderr.txt').read_text()


def wait_until(condition, proc, timeout=120.0, what='the condition'):
    """Poll ``condition()`` until it holds; fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            err = Path(proc.args[1]).with_name('stderr.txt').read_text()  # see start_build
            pytest.fail(f'the build ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}')
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f'timed out waiting for {what}')
        time.sleep(0.05)


def process_table():
    """``{pid: (ppid, state)}`` of every process, from /proc."""
    table = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid):
    """Pids of every living descendant of ``pid``."""
    table = process_table()
    out, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, (ppid, state) in table.items()
                    if ppid in frontier and state != 'Z' and p not in out}
        out |= frontier
    return out


def alive(pids):
    table = process_table()
    return {p for p in pids if p in table and table[p][1] != 'Z'}


# ------------------------------------------------------------------ 1. versioned rewrites
def test_killed_rewrite_leaves_the_live_bank_intact(toy_json, tmp_path):  # noqa: F811
    """A ``--stage write`` rewrite with another quality, SIGKILLed after its first class:
    the bank still opens and every crop decodes as before; the rewrite then completes and the
    previous version stays readable."""
    work = fresh_build(toy_json, tmp_path / 'work')
    before = bank_rows(str(work / 'bank'))
    cfg_path = write_config(tmp_path / 'cfg.py', make_cfg(work, toy_json))
    markers = sorted(glob.glob(str(work / 'write' / '*.json')))
    old = {p: json.load(open(p))['fingerprint'] for p in markers}

    def rewritten():
        return [p for p in markers if (json.load(open(p)) or {}).get('fingerprint') != old[p]]

    slow_writes = '''
    from xpaste.builder.stages import write
    _job = write.write_class_job
    def slow_job(job):
        result = _job(job)
        time.sleep(1.0)
        return result
    write.write_class_job = slow_job
    '''
    proc = start_build(tmp_path, cfg_path, '--stage', 'write', '--cfg-options',
                       'write.quality=80', patch=slow_writes)
    try:
        wait_until(lambda: len(rewritten()) >= 1, proc, what='the first class is rewritten')
    finally:
        proc.kill()
        proc.wait()
    assert len(rewritten()) < NUM_CLASSES  # killed midway
    assert bank_rows(str(work / 'bank')) == before
    assert check_bank(str(work / 'bank'), deep=True).ok
    from tools.bank.build import main
    main([cfg_path, '--stage', 'write', '--cfg-options', 'write.quality=80'])
    manifest = json.load(open(work / 'bank' / 'manifest.json'))
    assert manifest['build']['config']['write']['quality'] == 80
    assert len(bank_rows(str(work / 'bank'))) == len(before)
    assert check_bank(str(work / 'bank'), deep=True).ok
    assert check_bank(str(work / 'bank'), deep=True, version=1).ok  # the previous version


def test_keep_versions_is_checked_before_any_work(toy_json, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match=r'write.keep_versions must lie in \[0, inf\), '
                       'got -1'):
        BankBuilder(make_cfg(tmp_path, toy_json, write=dict(keep_versions=-1)))


def test_class_no_longer_built_is_withdrawn_safely(toy_json, tmp_path):  # noqa: F811
    """Dropping a class from the build withdraws its part: the bank gets the new category list,
    and the previous version, which readers may have open, stays whole."""
    work = fresh_build(toy_json, tmp_path / 'work')
    before = bank_rows(str(work / 'bank'))
    reader = BankReader(str(work / 'bank'))
    summary = build(make_cfg(work, toy_json, categories=dict(max_classes=NUM_CLASSES - 1)))
    assert summary['write']['classes'] == NUM_CLASSES - 1  # parts hold the category list
    manifest = json.load(open(work / 'bank' / 'manifest.json'))
    assert len(manifest['categories']) == NUM_CLASSES - 1
    rows = bank_rows(str(work / 'bank'))
    assert len({r['category_name'] for r in rows}) == NUM_CLASSES - 1
    assert check_bank(str(work / 'bank'), deep=True, version=1).ok
    with reader:
        assert [hashlib.sha1(reader.decode(i).tobytes()).hexdigest()
                for i in range(len(reader))] == [r['pixels'] for r in before]


# ------------------------------------------------------------------ 2. damaged banks
def test_truncated_shard_is_detected_and_rewritten(toy_json, tmp_path):  # noqa: F811
    work = fresh_build(toy_json, tmp_path / 'work')
    rows = bank_rows(str(work / 'bank'))
    shard = sorted(glob.glob(str(work / 'bank' / 'parts' / '*' / 'shard-*.bin')))[1]
    with open(shard, 'r+b') as f:
        f.truncate(osp.getsize(shard) // 2)
    with LogRecords() as log:
        summary = build(make_cfg(work, toy_json))
    assert summary['write']['classes'] == 1
    assert any(shard in m and 'truncated' in m for m in log.messages)
    assert any('fails its integrity check' in m for m in log.messages)
    assert not any('is up to date' in m for m in log.messages)
    assert check_bank(str(work / 'bank')).ok
    assert bank_rows(str(work / 'bank')) == rows


def test_truncated_index_column_is_merged_again(toy_json, tmp_path):  # noqa: F811
    work = fresh_build(toy_json, tmp_path / 'work')
    rows = bank_rows(str(work / 'bank'))
    column = work / 'bank' / 'index' / 'area.npy'
    with open(column, 'r+b') as f:
        f.truncate(osp.getsize(column) - 16)
    with LogRecords() as log:
        summary = build(make_cfg(work, toy_json))
    assert summary['write']['classes'] == 0
    assert any('fails its integrity check' in m and 'area.npy' in m for m in log.messages)
    assert check_bank(str(work / 'bank')).ok
    assert bank_rows(str(work / 'bank')) == rows


def test_bank_that_cannot_be_merged_names_the_file_and_the_repair(toy_json,  # noqa: F811
                                                                 tmp_path):
    """A commit record damaged without changing its size passes the part's done check; the
    merge then fails with the file and the repair command in the message."""
    work = fresh_build(toy_json, tmp_path / 'work')
    record = sorted(glob.glob(str(work / 'bank' / 'parts' / '*' / 'part.json')))[0]
    size = osp.getsize(record)
    with open(record, 'wb') as f:
        f.write(b'{' + b' ' * (size - 1))
    column = work / 'bank' / 'index' / 'area.npy'
    with open(column, 'r+b') as f:
        f.truncate(osp.getsize(column) - 16)
    with pytest.raises(RuntimeError, match=r'part\.json.*tools/bank/check\.py .*--repair'):
        build(make_cfg(work, toy_json))


# ------------------------------------------------------------------ 3. workers die with the build
def test_killed_build_leaves_no_worker_processes(toy_json, tmp_path):  # noqa: F811
    """SIGKILL to the main process of a build with process workers: the workers (and the
    multiprocessing resource tracker) exit on their own."""
    cfg = make_cfg(tmp_path / 'work', toy_json,
                   workers=dict(type='process', num_workers=2, max_pending=2))
    cfg_path = write_config(tmp_path / 'cfg.py', cfg)
    ready = tmp_path / 'first_chunk_done'
    pause = f'''
    import pathlib
    from xpaste.builder.finisher import ChunkFinisher
    _finish = ChunkFinisher._finish
    def finish_then_pause(self, *args):
        _finish(self, *args)
        pathlib.Path({str(ready)!r}).touch()
        time.sleep(600)
    ChunkFinisher._finish = finish_then_pause
    '''
    proc = start_build(tmp_path, cfg_path, patch=pause)
    children = set()
    try:
        wait_until(ready.exists, proc, what='the first chunk is back from the workers')
        children = descendants(proc.pid)
        assert len(children) >= 2  # the workers (and the resource tracker)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(children), f'processes left behind: {sorted(alive(children))}'
    finally:
        proc.kill()
        for pid in alive(children):
            os.kill(pid, signal.SIGKILL)


def test_worker_initializer_leaves_signals_to_the_main_process():
    executor = jobs.make_executor(dict(type='process', num_workers=1, max_pending=None,
                                       start_method='spawn'))
    try:
        handlers = executor.submit(_signal_handlers).result()
    finally:
        executor.shutdown()
    assert handlers == [signal.SIG_IGN, signal.SIG_IGN]


def _signal_handlers():
    return [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)]


# ------------------------------------------------------------------ 4. SIGTERM / SIGINT
def test_sigterm_stops_cleanly_and_resumes_to_the_same_bank(toy_json, tmp_path):  # noqa: F811
    """SIGTERM midway: exit status 143 and the resume command; the resumed build gives the
    same bank, byte for byte, as an uninterrupted build in the same place."""
    from tools.bank.build import main
    work = tmp_path / 'work'
    cfg_path = write_config(tmp_path / 'cfg.py',
                            make_cfg(work, toy_json, categories=dict(max_classes=2)))
    main([cfg_path, '--no-progress'])
    reference = file_hashes(work / 'bank')
    shutil.rmtree(work)
    proc = start_build(tmp_path, cfg_path, patch=SLOW_SOURCE.format(delay=0.4))
    wait_until(lambda: glob.glob(str(work / 'gen' / '*' / '*.json')), proc,
               what='the first chunk is generated')
    proc.send_signal(signal.SIGTERM)
    err = stderr_of(proc, tmp_path)
    assert proc.returncode == 128 + signal.SIGTERM == 143
    assert 'SIGTERM received: the build stopped in stage generate/segment/score' in err
    assert f'resume with: python tools/bank/build.py {cfg_path} --no-progress' in err
    assert 'Traceback' not in err
    done = glob.glob(str(work / 'gen' / '*' / '*.json'))
    assert 0 < len(done) < 4 and not osp.exists(work / 'bank' / 'manifest.json')
    # what was finished is marked done: every saved chunk has its segment output too
    assert len(glob.glob(str(work / 'seg' / '*' / '*' / '*.npz'))) == len(done)
    summary = main([cfg_path, '--no-progress'])
    assert summary['stream']['skipped'] == len(done)
    assert file_hashes(work / 'bank') == reference


def test_stop_request_ends_a_wait_for_other_ranks(toy_json, tmp_path):  # noqa: F811
    cfg = make_cfg(tmp_path, toy_json, dist=dict(wait_timeout=3600, poll_interval=0.05))
    builder = BankBuilder(cfg, rank=1, world_size=2)
    builder.stop.set(signal.SIGTERM)
    with pytest.raises(BuildInterrupted, match=r'SIGTERM received: the build stopped in stage '
                       r'filter \(while waiting for chunk outputs'):
        builder.stages['filter'].run()


def test_second_signal_stops_at_once():
    stop = StopRequest()
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # the handler runs between bytecodes
            if stop.requested:
                break
            time.sleep(0.01)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(BuildInterrupted) as info:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert info.value.exit_code == 130
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ---------------------------------------- 5. unwritable folders (done markers: test_pipeline.py)
@pytest.mark.parametrize('what', ['bank_dir', 'work_dir'])
def test_unwritable_dir_fails_before_any_work(toy_json, tmp_path, what):  # noqa: F811
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    cfg = make_cfg(tmp_path / 'work', toy_json)
    cfg[what] = str(blocker / 'sub')
    builder = BankBuilder(cfg)
    with pytest.raises(PermissionError,
                       match=re.escape(f"{what.replace('_', ' ')} '{blocker}/sub' is not "
                                       'writable')):
        builder.run()
    assert not osp.exists(tmp_path / 'work' / 'gen')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_bank_dir_fails_before_any_work(toy_json, tmp_path):  # noqa: F811
    bank = tmp_path / 'bank'
    bank.mkdir()
    bank.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match='is not writable'):
            build(make_cfg(tmp_path / 'work', toy_json, bank_dir=str(bank)))
    finally:
        bank.chmod(0o700)
    assert not osp.exists(tmp_path / 'work' / 'gen')


# ------------------------------------------------------------------ 6. damaged intermediates
def test_truncated_intermediates_are_redone_and_named(toy_json, tmp_path):  # noqa: F811
    work = fresh_build(toy_json, tmp_path / 'work')
    rows = bank_rows(str(work / 'bank'))
    seg = sorted(glob.glob(str(work / 'seg' / 'classical' / '*' / '*.npz')))[2]
    image = sorted(glob.glob(str(work / 'images' / '*' / '*.png')))[-1]
    for path in (seg, image):
        with open(path, 'r+b') as f:
            f.truncate(osp.getsize(path) * 2 // 3)
    with LogRecords() as log:
        summary = build(make_cfg(work, toy_json))
    assert summary['stream']['chunks'] == 2
    assert any(seg in m and 'unreadable npz' in m for m in log.messages)
    assert any(image in m and 'truncated' in m for m in log.messages)
    assert image_problem(image, complete=True) == ''
    assert bank_rows(str(work / 'bank')) == rows


@pytest.mark.parametrize('fmt', ['png', 'jpg', 'webp'])
def test_image_problem_reads_header_and_end(tmp_path, fmt):
    image = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    data = cv2.imencode(f'.{fmt}', image)[1].tobytes()
    path = str(tmp_path / f'a.{fmt}')
    with open(path, 'wb') as f:
        f.write(data)
    assert image_problem(path, (40, 50), complete=True) == ''
    assert 'header gives 50x40' in image_problem(path, (50, 40))
    assert image_problem(str(tmp_path / 'none.png')) == 'missing'
    with open(path, 'wb') as f:
        f.write(data[:len(data) * 3 // 4])
    assert image_problem(path, (40, 50), complete=True) != ''
    with open(path, 'wb') as f:
        f.write(data[:10])
    assert 'unreadable image header' in image_problem(path)


# ------------------------------------------------------------------ 7. progress across ranks
def test_rank_zero_shows_totals_across_ranks(tmp_path):
    other = RankProgress(str(tmp_path), 'generate/segment/score', 10, rank=1, world_size=2,
                         show=False, interval=0)
    other.update(4)
    stale = RankProgress(str(tmp_path), 'write', 99, rank=2, world_size=3, show=False)
    stale.close()  # another stage: not counted
    main = RankProgress(str(tmp_path), 'generate/segment/score', 8, rank=0, world_size=3,
                        show=False, interval=0)
    main.update(3)
    assert main.totals() == (7, 18)
    other.update(6)
    other.close()
    assert main.totals() == (13, 18)
    record = json.load(open(tmp_path / 'progress' / 'rank-00001.json'))
    assert record['done'] == 10 and record['total'] == 10 and record['world_size'] == 2


class _LazyFuture(Future):
    """A job that starts only when its result is asked for: until then it can be cancelled,
    as a busy process pool's queued jobs can."""

    def __init__(self, fn, args):
        super().__init__()
        self.job = (fn, args)

    def result(self, timeout=None):
        if not self.done():
            if not self.set_running_or_notify_cancel():
                raise RuntimeError('cancelled before it started')
            fn, args = self.job
            self.set_result(fn(*args))
        return super().result(timeout)


class _LazyExecutor:

    def submit(self, fn, *args):
        return _LazyFuture(fn, args)

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def test_queued_bank_parts_are_written_without_a_stop(toy_json, tmp_path,  # noqa: F811
                                                      monkeypatch):
    """Bank parts still queued in the pool when the last one is submitted are written, not
    cancelled (only a stop request leaves them for the resumed build)."""
    from xpaste.builder.stages import write
    cfg = make_cfg(tmp_path / 'work', toy_json,
                   workers=dict(type='thread', num_workers=1, max_pending=16))
    build(cfg, ['generate', 'segment', 'score', 'filter'])
    monkeypatch.setattr(write, 'make_executor', lambda workers: _LazyExecutor())
    summary = build(cfg, ['write'])
    assert summary['write']['classes'] == NUM_CLASSES
    assert check_bank(str(tmp_path / 'work' / 'bank')).ok
    assert len({r['category_name'] for r in bank_rows(str(tmp_path / 'work' / 'bank'))}) \
        == NUM_CLASSES
