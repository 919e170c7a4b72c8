"""Keeping stdout for a tool's result: everything else written meanwhile goes to stderr."""
import contextlib
import os
import sys


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to stdout inside the block to stderr instead.

    Both levels are redirected: ``sys.stdout`` (``print``) and file descriptor 1, so loggers that
    kept a reference to the original stream (mmengine's ``MMLogger`` logs to ``sys.stdout``),
    C extensions and child processes started inside the block write to stderr too. A tool that
    prints one JSON object on stdout runs its work inside this block and prints afterwards.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (an embedded interpreter): Python level only
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
