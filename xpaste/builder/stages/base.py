"""The :class:`Stage` protocol and the two kinds of stages: per chunk and per class."""
from typing import TYPE_CHECKING, Optional, Protocol

from ..interrupt import StopRequest
from ..layout import Unit

if TYPE_CHECKING:
    from ..context import BuildContext
    from ..stream import StreamScheduler


class Stage(Protocol):
    """One stage of a bank build.

    Attributes:
        name (str): One of :data:`~xpaste.builder.layout.STAGES`.
        unit (str): ``'chunk'`` (a :class:`~xpaste.builder.layout.Chunk` of images) or
            ``'class'`` (the position of a class in the build).
    """

    name: str
    unit: str

    def path(self, unit: Unit, part: Optional[str] = None) -> str:
        """The output file of ``unit`` (``part``: the segmenter, for ``segment``)."""

    def done(self, unit: Unit, part: Optional[str] = None) -> bool:
        """Whether ``unit``'s output is whole and has the current fingerprint."""

    def run(self) -> dict:
        """Run the stage on this rank's units, skipping done ones; returns a summary."""


class BaseStage:
    """Output files and done checks of a stage, from the build's layout
    (:data:`~xpaste.builder.layout.OUTPUTS`).

    Args:
        ctx (BuildContext): The build.
        stop (StopRequest, optional): Set by SIGTERM/SIGINT; the stage then finishes the units
            in flight and raises :class:`~xpaste.builder.interrupt.BuildInterrupted`.
            Defaults to a request of its own (never set).
    """

    name = ''
    unit = ''

    def __init__(self, ctx: 'BuildContext', stop: Optional[StopRequest] = None):
        self.ctx = ctx
        self.stop = StopRequest() if stop is None else stop

    def path(self, unit: Unit, part: Optional[str] = None) -> str:
        return self.ctx.layout.path(self.name, unit, part)

    def done(self, unit: Unit, part: Optional[str] = None) -> bool:
        return self.ctx.layout.done(self.name, unit, part)

    def wait(self, items: list, check, what: str, name) -> None:
        """Wait for other ranks' outputs (:meth:`BuildContext.wait`); a stop request
        (SIGTERM/SIGINT) ends the wait with :class:`~xpaste.builder.interrupt.BuildInterrupted`.
        """

        def check_or_stop(item) -> bool:
            self.stop.check(self.name, f'while waiting for {what} of other ranks')
            return check(item)

        self.ctx.wait(items, check_or_stop, what=what, name=name)


class ChunkStage(BaseStage):
    """A per-chunk stage (``generate``, ``segment``, ``score``). These run together as one
    stream (:class:`~xpaste.builder.stream.StreamScheduler`); alone, a stage is a stream of
    one stage.

    Args:
        ctx (BuildContext): The build.
        stream (StreamScheduler): Runs the per-chunk stages.
    """

    unit = 'chunk'

    def __init__(self, ctx: 'BuildContext', stream: 'StreamScheduler'):
        super().__init__(ctx, stream.stop)
        self.stream = stream

    def run(self) -> dict:
        return self.stream.run([self.name])


class ClassStage(BaseStage):
    """A per-class stage (``filter``, ``write``, ``report``) on this rank's classes."""

    unit = 'class'

    def todo(self) -> tuple[list[int], list[int]]:
        """This rank's classes and those of them not done yet."""
        cats = self.ctx.plan.my_classes()
        return cats, [c for c in cats if not self.done(c)]

    def require_filtered(self, cats: list[int]) -> None:
        """Raise ``FileNotFoundError`` unless the filter output of every class of ``cats`` is
        done."""
        layout = self.ctx.layout
        missing = [layout.path('filter', c) for c in cats if not layout.done('filter', c)]
        if missing:
            raise FileNotFoundError(f'filter output missing or stale for {len(missing)} classes '
                                    f'(first: {missing[0]!r}): run --stage filter first')
