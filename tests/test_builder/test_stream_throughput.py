"""What keeps a GPU generator busy, on CPU tensors (the same code paths as on a GPU): images
to workers through shared memory, the background finisher with its bounded queue, cut-outs
scored in batches shared across chunks, whole-image CLIP inputs made from tensors."""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from test_pipeline import bank_rows, build, make_cfg, toy_json  # noqa: F401
from test_real_filter import tiny_clip  # noqa: F401

from xpaste.builder import jobs
from xpaste.builder.clip_scoring import ClipScorer, prepare_whole, prepare_whole_tensor
from xpaste.builder.segmenters import ClassicalSegmenter
from xpaste.builder.shm import (SEGMENT_PREFIX, SharedSegments, share_images, take_images,
                                unlink_segment)
from xpaste.toy import render_single_instance, toy_categories


def our_segments():
    return sorted(n for n in os.listdir('/dev/shm') if n.startswith(SEGMENT_PREFIX)) if osp.isdir(
        '/dev/shm') else []


class TensorPipe:
    """A diffusers pipeline stand-in on the CPU: toy renders, NCHW tensors in [0, 1] for
    output_type='pt' (NHWC numpy for 'np'), as diffusers returns them."""

    def __init__(self, size=64):
        self.size = size
        self.calls = 0

    def __call__(self, prompt, generator, output_type='np', **kwargs):
        self.calls += 1
        cat = toy_categories(1, seed=0)[0]
        images = []
        for g in generator:
            image, _ = render_single_instance(cat, np.random.default_rng(g.initial_seed()),
                                              self.size)
            images.append(image[..., ::-1].astype(np.float32) / 255)
        images = np.stack(images)
        if output_type == 'pt':
            images = torch.from_numpy(images).permute(0, 3, 1, 2)
        return type('Out', (), dict(images=images, nsfw_content_detected=None))()

    def to(self, *a, **k):
        return self

    def set_progress_bar_config(self, **k):
        pass


def gpu_like_cfg(work_dir, ann, **over):
    """A build whose generator "runs on the GPU" (a DiffusersSource in the main process, on
    CPU tensors)."""
    cfg = dict(
        images_per_class=6, chunk_size=2, categories=dict(max_classes=2),
        source=dict(type='DiffusersSource', model='fake/sd', pipeline=TensorPipe(), device='cpu',
                    batch_size=4))
    cfg.update(over)
    return make_cfg(work_dir, ann, **cfg)


def scores_of(work_dir):
    out = {}
    for path in sorted(glob.glob(str(work_dir / 'score' / '*' / '*.npz'))):
        with np.load(path) as data:
            out[osp.relpath(path, work_dir)] = {k: data[k] for k in data.files if k != 'meta'}
    return out


# ------------------------------------------------------------------------------ shared memory
def test_shared_images_round_trip_exactly_and_are_freed():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (5 + i, 7, 3), dtype=np.uint8) for i in range(3)]
    images.insert(1, None)
    before = our_segments()
    segment, handle = share_images(images)
    assert handle.name.startswith(SEGMENT_PREFIX) and our_segments() == sorted(before +
                                                                                [handle.name])
    back = take_images(handle)  # what a worker does: copy out, detach
    assert back[1] is None
    for a, b in zip(images, back):
        if a is not None:
            assert b.dtype == np.uint8 and np.array_equal(a, b)
    unlink_segment(segment)
    unlink_segment(segment)  # a second unlink does nothing
    assert our_segments() == before
    with pytest.raises(TypeError, match='uint8'):
        share_images([np.zeros((2, 2, 3), np.float32)])


def test_segments_are_freed_when_their_job_ends_however_it_ends():
    from concurrent.futures import Future
    segments = SharedSegments()
    done, failed, cancelled = Future(), Future(), Future()
    for future in (done, failed, cancelled):
        segments.free_when_done(segments.share([np.zeros((4, 4, 3), np.uint8)]), future)
    left = segments.share([np.ones((2, 2, 3), np.uint8)])
    assert len(segments) == 4
    done.set_result(1)
    failed.set_exception(RuntimeError('worker died'))
    cancelled.cancel()
    assert len(segments) == 1
    segments.close()
    assert len(segments) == 0 and left.name not in our_segments()


def test_segments_of_a_killed_main_process_are_unlinked():
    """SIGKILL leaves no chance to unlink: multiprocessing's resource tracker does it once the
    process is gone."""
    import subprocess
    import sys
    import time
    code = ('import os, signal, numpy as np\n'
            'from xpaste.builder.shm import SharedSegments\n'
            'handle = SharedSegments().share([np.zeros((64, 64, 3), np.uint8)])\n'
            'print(handle.name, flush=True)\n'
            'os.kill(os.getpid(), signal.SIGKILL)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    name = proc.stdout.strip()
    assert proc.returncode == -9 and name.startswith(SEGMENT_PREFIX)
    deadline = time.monotonic() + 30
    while name in our_segments() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert name not in our_segments()


class CrashingSegmenter(ClassicalSegmenter):
    """Kills the worker process it runs in (a segfault, an OOM kill)."""

    def segment(self, images, category):
        os._exit(3)


@pytest.mark.slow
def test_process_workers_get_images_through_shared_memory(toy_json, tmp_path,  # noqa: F811
                                                          monkeypatch):
    """Same bank as pickled images; the workers got handles, not pixels; nothing is left in
    /dev/shm, also after a worker died."""
    before = our_segments()
    reference = gpu_like_cfg(tmp_path / 'pickled', toy_json, stream=dict(shared_memory=False))
    build(reference)
    shared = gpu_like_cfg(tmp_path / 'shared', toy_json,
                          workers=dict(type='process', num_workers=1, start_method='spawn'))
    jobs_seen = []
    real_submit = jobs.ProcessPoolExecutor.submit

    def submit(self, fn, *args, **kwargs):
        if fn is jobs.cpu_chunk_job:
            job = args[0]
            jobs_seen.append((job.shared is not None, any(i.image is not None
                                                           for i in job.items or [])))
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(jobs.ProcessPoolExecutor, 'submit', submit)
    build(shared)
    assert jobs_seen and all(s and not pixels for s, pixels in jobs_seen)
    assert bank_rows(str(tmp_path / 'shared' / 'bank')) == bank_rows(
        str(tmp_path / 'pickled' / 'bank'))
    assert our_segments() == before
    # a worker process dies with its images in shared memory
    from concurrent.futures.process import BrokenProcessPool
    crash = gpu_like_cfg(tmp_path / 'crash', toy_json,
                         workers=dict(type='process', num_workers=1, start_method='spawn'),
                         segment=dict(segmenters=[dict(type=CrashingSegmenter)]))
    with pytest.raises(BrokenProcessPool):
        build(crash)
    assert our_segments() == before


# ------------------------------------------------------------------------------ the finisher
def test_images_in_flight_never_exceed_the_bound(toy_json, tmp_path, tiny_clip,  # noqa: F811
                                                 monkeypatch):
    """Counted from outside: each time the generator is called, the images generated so far
    minus those whose score file is written (the last step of a chunk) never exceed
    max_pending chunks; a slow finisher makes the generator wait for it."""
    chunk, max_pending = 2, 3
    cfg = gpu_like_cfg(tmp_path, toy_json, chunk_size=chunk, images_per_class=8,
                       categories=dict(max_classes=3), score=tiny_clip,
                       workers=dict(type='thread', num_workers=1, max_pending=max_pending))
    pipe = cfg['source']['pipeline']
    cfg['source']['batch_size'] = 2 * chunk  # one call makes two chunks
    seen, made = [], [0]
    real_call = pipe.__class__.__call__

    def counting(self, prompt, generator, **kwargs):
        done = len(glob.glob(str(tmp_path / 'score' / '*' / '*.npz'))) * chunk
        seen.append(made[0] - done + len(prompt))  # in flight once this batch is made
        made[0] += len(prompt)
        return real_call(self, prompt, generator, **kwargs)

    monkeypatch.setattr(TensorPipe, '__call__', counting)
    real_segment = ClassicalSegmenter.segment

    def slow_segment(self, images, category):
        import time
        time.sleep(0.1)
        return real_segment(self, images, category)

    monkeypatch.setattr(ClassicalSegmenter, 'segment', slow_segment)
    summary = build(cfg)
    stats = summary['stream']
    assert stats['background'] and stats['chunks'] == 12
    assert max(seen) <= max_pending * chunk
    assert stats['max_in_flight'] == max_pending  # the bound was reached, and held
    assert len(scores_of(tmp_path)) == 12


def test_background_batched_scores_equal_inline_scores(toy_json, tmp_path,  # noqa: F811
                                                       tiny_clip):
    """Cut-outs of several chunks in shared CLIP batches (background finisher) give the
    scores and embeddings of one pass per chunk (inline finisher)."""
    common = dict(score=tiny_clip, workers=dict(type='thread', num_workers=1, max_pending=4))
    build(gpu_like_cfg(tmp_path / 'inline', toy_json, stream=dict(background=False), **common))
    build(gpu_like_cfg(tmp_path / 'batched', toy_json, stream=dict(score_batch=8), **common))
    inline, batched = scores_of(tmp_path / 'inline'), scores_of(tmp_path / 'batched')
    assert sorted(inline) == sorted(batched) and len(inline) == 6
    for key in inline:
        for name in ('image_score', 'cutout_score'):
            np.testing.assert_allclose(batched[key][name], inline[key][name], atol=1e-4)
        np.testing.assert_array_equal(batched[key]['best'], inline[key]['best'])
        np.testing.assert_allclose(batched[key]['embedding'].astype(np.float32),
                                   inline[key]['embedding'].astype(np.float32), atol=2e-3)


def test_device_whole_image_scores_are_close_to_the_workers(toy_json, tmp_path,  # noqa: F811
                                                             tiny_clip):
    """stream.device_scores=True: whole-image inputs made from the generator's tensors (here
    CPU tensors) score within a fraction of a point of the workers' OpenCV inputs; cut-out
    scores are unchanged."""
    common = dict(score=tiny_clip, workers=dict(type='thread', num_workers=1))
    build(gpu_like_cfg(tmp_path / 'host', toy_json, stream=dict(device_scores=False), **common))
    build(gpu_like_cfg(tmp_path / 'device', toy_json, stream=dict(device_scores=True), **common))
    host, device = scores_of(tmp_path / 'host'), scores_of(tmp_path / 'device')
    for key in host:
        np.testing.assert_allclose(device[key]['cutout_score'], host[key]['cutout_score'],
                                   atol=1e-4)
        # 64 px renders resized to the tiny CLIP's 32 px by two different resizes
        np.testing.assert_allclose(device[key]['image_score'], host[key]['image_score'], atol=1.0)


def test_stream_options_are_checked(toy_json, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="stream.background must be 'auto', True or False"):
        build(make_cfg(tmp_path, toy_json, stream=dict(background='yes')))
    with pytest.raises(ValueError, match='stream.score_batch must be None or an integer >= 1'):
        build(make_cfg(tmp_path, toy_json, stream=dict(score_batch=0)))
    with pytest.raises(ValueError, match="stream: unknown option 'shared_memroy'.*did you mean "
                       "'shared_memory'"):
        build(make_cfg(tmp_path, toy_json, stream=dict(shared_memroy=False)))


# ------------------------------------------------------------------------------ CLIP inputs
def test_encode_many_equals_encode_of_each_group(tiny_clip):
    scorer = ClipScorer(**dict(tiny_clip, batch_size=5))
    scorer.setup()
    rng = np.random.default_rng(0)
    groups = [rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (3, 0, 7, 1)]
    groups[2] = torch.from_numpy(groups[2])  # tensors and arrays mix
    shared = scorer.encode_many(groups)
    assert [len(e) for e in shared] == [3, 0, 7, 1]
    for group, emb in zip(groups, shared):
        if len(group):
            np.testing.assert_allclose(emb, scorer.encode(group), atol=1e-5)


def test_tensor_preprocessing_is_close_to_open_clip(tiny_clip):
    """prepare_whole_tensor against open_clip's own preprocessing (PIL bicubic resize of the
    shorter side, centre crop): same sizes and crop, both bicubic with antialiasing, but PIL's
    and torch's bicubic kernels differ slightly, so pixels differ by a few grey levels (mean
    < 0.5, max <= 8 on a noisy image with sharp edges), and the embeddings are nearly equal."""
    import open_clip
    from PIL import Image
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), np.uint8)))  # 96 x 128
    bgr = np.clip(bgr.astype(int) + rng.integers(-20, 21, bgr.shape), 0, 255).astype(np.uint8)
    ours = prepare_whole_tensor(torch.from_numpy(bgr)[None], 32)[0].numpy()
    preprocess = open_clip.image_transform(32, is_train=False)
    theirs = preprocess(Image.fromarray(bgr[..., ::-1].copy()))  # normalised CHW
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(3, 1, 1)
    theirs = ((theirs * std + mean) * 255).round().permute(1, 2, 0).numpy()
    diff = np.abs(ours.astype(float) - theirs)
    assert ours.shape == (32, 32, 3) and diff.mean() < 0.5 and diff.max() <= 8
    # the workers' OpenCV path is further from open_clip's than the tensor path
    worker = prepare_whole(bgr, 32).astype(float)
    assert diff.mean() <= np.abs(worker - theirs).mean()
    scorer = ClipScorer(**tiny_clip)
    scorer.setup()
    a, b = scorer.encode(ours[None]), scorer.encode(theirs.astype(np.uint8)[None])
    assert float((a * b).sum()) > 0.99
    # already at the input size: no resize, exact
    small = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        prepare_whole_tensor(torch.from_numpy(small), 32).numpy(), small[..., ::-1])


def test_stream_options_are_recorded_only_when_set():
    """Builds that keep the stream defaults record the same settings (so the same bank
    bytes) as before the section existed."""
    from xpaste.builder.defaults import merge_defaults, recorded_options
    assert 'stream' not in recorded_options(merge_defaults({}))
    changed = recorded_options(merge_defaults(dict(stream=dict(background=False))))
    assert changed['stream'] == dict(background=False)
