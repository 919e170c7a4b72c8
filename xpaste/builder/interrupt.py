"""Stopping a build cleanly on SIGTERM / SIGINT.

Slurm preempts a job with SIGTERM, then SIGKILL after a grace period; Ctrl-C sends SIGINT. While
:meth:`BankBuilder.run <xpaste.builder.pipeline.BankBuilder.run>` runs in the main thread, the
first of these signals only sets a :class:`StopRequest`: the stages stop taking new units,
finish (and mark done) the units in flight, and raise :class:`BuildInterrupted`. Every finished
unit is kept, so running the same command again resumes the build. A second signal stops at
once (the same exception, raised where the program is).
"""
import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional

from mmengine.logging import print_log

#: The signals that stop a build.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class BuildInterrupted(Exception):
    """A build stopped by a signal after finishing the units in flight.

    Args:
        signum (int): The signal.
        stage (str): Where the build stopped.
        detail (str): What was finished before stopping. Defaults to ''.

    Attributes:
        exit_code (int): ``128 + signum``, the conventional exit status of a process ended by
            that signal (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, signum: int, stage: str, detail: str = ''):
        self.signum = signum
        self.stage = stage
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(f'{name} received: the build stopped in stage {stage}'
                         f'{f" ({detail})" if detail else ""}; every finished unit is kept, '
                         'so the same command resumes it')


class StopRequest:
    """Whether a stop was requested, and by which signal; checked by the stages between
    units."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._logged = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def set(self, signum: int) -> None:
        self.signum = signum

    def clear(self) -> None:
        self.signum = None
        self._logged = False

    def stopping(self, what: str) -> bool:
        """Whether a stop was requested; the first time, log it, naming what is left to
        finish (``what``, e.g. ``'3 chunks in flight'``)."""
        if self.signum is None:
            return False
        if not self._logged:
            self._logged = True
            print_log(
                f'{signal.Signals(self.signum).name} received: finishing {what}, then '
                'stopping (a second signal stops at once)',
                logger='current')
        return True

    def check(self, stage: str, detail: str = '') -> None:
        """Raise :class:`BuildInterrupted` if a stop was requested."""
        if self.signum is not None:
            raise BuildInterrupted(self.signum, stage, detail)


@contextmanager
def stop_on_signals(stop: StopRequest, stage: str = 'build') -> Iterator[StopRequest]:
    """Within the block, SIGTERM and SIGINT set ``stop`` (a second one raises
    :class:`BuildInterrupted` at once); the previous handlers come back afterwards. Outside
    the main thread (where Python cannot install handlers) nothing is installed.

    Args:
        stop (StopRequest): What the signals set; cleared on entry.
        stage (str): Named by the exception of a second signal. Defaults to ``'build'``.
    """
    stop.clear()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise BuildInterrupted(signum, stage, 'a second signal: stopped at once')
        stop.set(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
