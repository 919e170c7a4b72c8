"""The bank builder: stages, work split over ranks, resume, GPU/CPU overlap.

Stages (:data:`~xpaste.builder.layout.STAGES`), each runnable alone or all in order, one module
each in :mod:`xpaste.builder.stages`::

    generate  images of every class from the source           work_dir/gen/, work_dir/images/
    segment   one mask per image and segmenter                 work_dir/seg/<segmenter>/
    score     CLIP scores of images and cut-outs, best cut-out work_dir/score/
    filter    keep/drop decision per cut-out, with the reason  work_dir/filter/
    write     RGBA crops into the bank (one part per class)    bank_dir/ (+ work_dir/write/)
    report    counts, score histograms, contact sheets         work_dir/report/index.html

How the build is put together:

* :mod:`~xpaste.builder.defaults`: every option and its default (:data:`BUILD_DEFAULTS`);
* :mod:`~xpaste.builder.context`: the checked settings and built components
  (:class:`BuildContext`), shared by the stages;
* :mod:`~xpaste.builder.layout`: output files, fingerprints and done checks (resume), chunks
  and their ranks;
* :mod:`~xpaste.builder.stream`: ``generate``/``segment``/``score`` as one stream over a
  bounded queue of CPU workers, filtering and writing classes on the way;
* :mod:`~xpaste.builder.jobs`: the typed jobs the CPU workers run.

Every unit's output is one file, written atomically, holding the fingerprint of the settings
that made it. A rerun skips units whose file has the current fingerprint, so a killed run loses
at most the chunks in flight, and ``--stage filter --cfg-options filter.min_clip=20``
recomputes the filter from the saved scores while ``generate``, ``segment`` and ``score`` stay
as they are.

Ranks without a process group synchronise through files: a stage that needs other ranks'
outputs (``filter`` needs every chunk of a class, the bank merge needs every class) waits for
them up to ``dist.wait_timeout`` seconds.

SIGTERM (slurm preemption) or SIGINT during :meth:`BankBuilder.run` finishes the units in flight
and raises :class:`~xpaste.builder.interrupt.BuildInterrupted`; the same command resumes.
"""
from typing import Optional, Sequence

from .context import BuildContext
from .dist import barrier
from .interrupt import StopRequest, stop_on_signals
from .layout import STAGES, STREAM_STAGES
from .stages.filter import FilterStage
from .stages.report import ReportStage
from .stages.write import WriteStage
from .stream import StreamScheduler


class BankBuilder:
    """Builds an instance bank from a config (see
    :data:`~xpaste.builder.defaults.BUILD_DEFAULTS` for every option).

    All settings are checked and every model path is resolved at construction, before any
    work; models are loaded by the first stage that needs them.

    Args:
        cfg (dict | mmengine.Config): The build settings; ``work_dir`` is required.
        rank (int, optional): This rank. Defaults to the launcher's environment.
        world_size (int, optional): Number of ranks. Defaults to the launcher's environment.

    Attributes:
        ctx (BuildContext): Settings, components, layout and rank plan of the build.
        stop (StopRequest): Set by SIGTERM/SIGINT during :meth:`run`; every stage checks it
            between units.
        stream (StreamScheduler): Runs the per-chunk stages.
        stages (dict[str, Stage]): Every stage by name, in pipeline order.
    """

    def __init__(self, cfg: dict, rank: Optional[int] = None, world_size: Optional[int] = None):
        self.ctx = ctx = BuildContext.from_config(cfg, rank, world_size)
        self.stop = stop = StopRequest()
        filter_stage, write_stage = FilterStage(ctx, stop), WriteStage(ctx, stop)
        self.stream = StreamScheduler(ctx, filter_stage, write_stage, stop)
        self.stages = {
            stage.name: stage
            for stage in (*self.stream.stages, filter_stage, write_stage, ReportStage(ctx, stop))
        }

    def run(self, stages: Sequence[str] = STAGES) -> dict:
        """Run ``stages`` (in pipeline order) on this rank.

        Args:
            stages (Sequence[str] | str): Stage names, or ``'all'``. Defaults to all.

        Returns:
            dict: Per-stage summaries; the streamed stages together under ``'stream'``
            (:class:`~xpaste.builder.stream.StreamStats`).

        Raises:
            PermissionError: the work dir (or, with ``write``, the bank dir) is not writable;
                checked before any work.
            BuildInterrupted: SIGTERM/SIGINT (in the main thread): the units in flight were
                finished and marked done; running the same stages again resumes.
        """
        stages = list(STAGES) if stages in ('all', ['all'], ('all', )) else list(stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f'unknown stages {unknown!r}; choose from {list(STAGES)} or "all"')
        stages = [s for s in STAGES if s in stages]
        self.ctx.check_writable(bank='write' in stages)
        with stop_on_signals(self.stop):
            return self._run(stages)

    def _run(self, stages: list) -> dict:
        summary = {}
        stream = [s for s in stages if s in STREAM_STAGES]
        if stream:
            # classes whose chunks all finish on this rank are filtered and written at once
            then = []
            if len(stream) == len(STREAM_STAGES) and 'filter' in stages:
                then = ['filter'] + (['write'] if 'write' in stages else [])
            summary['stream'] = self.stream.run(stream, then=then)
            barrier()
        for stage in stages:
            if self.stages[stage].unit == 'class':
                summary[stage] = self.stages[stage].run()
                barrier()
        return summary
