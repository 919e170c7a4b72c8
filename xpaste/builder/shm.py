"""Images to worker processes through shared memory instead of pickles.

The main process copies a chunk's images into one POSIX shared-memory segment
(:func:`share_images`) and sends the workers a small picklable handle (:class:`SharedImages`:
the segment's name, each image's shape and offset). The worker copies the images out and
detaches at once (:func:`take_images`); the main process unlinks the segment as soon as the
worker's job is over, whether it succeeded, failed, was cancelled or its worker died
(:meth:`SharedSegments.free_when_done`), and unlinks whatever is left when the stream ends
(:meth:`SharedSegments.close`). Segments are named ``xpaste-<pid>-<n>`` under ``/dev/shm``; a main
process killed by SIGKILL leaves them to multiprocessing's resource tracker, which unlinks
them when the last process of the build is gone.
"""
import itertools
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Optional

import numpy as np

#: Prefix of the segments' names (``/dev/shm/xpaste-<pid>-<n>``).
SEGMENT_PREFIX = 'xpaste-'
_COUNTER = itertools.count()


@dataclass
class SharedImages:
    """A picklable handle of images in a shared-memory segment.

    Attributes:
        name (str): The segment's name.
        shapes (list): Per image, its shape, or None for an image that is not there.
        offsets (list[int]): Per image, its first byte in the segment.
    """

    name: str
    shapes: list
    offsets: list


def share_images(images: list) -> tuple:
    """Copy uint8 images into a new shared-memory segment.

    Args:
        images (list): uint8 arrays, None for missing ones.

    Returns:
        tuple: The segment (``SharedMemory``; the caller unlinks it) and its
        :class:`SharedImages` handle.
    """
    shapes, offsets, size = [], [], 0
    for image in images:
        if image is not None and image.dtype != np.uint8:
            raise TypeError(f'share_images takes uint8 images, got {image.dtype}')
        shapes.append(None if image is None else tuple(image.shape))
        offsets.append(size)
        size += 0 if image is None else image.nbytes
    name = f'{SEGMENT_PREFIX}{os.getpid()}-{next(_COUNTER)}'
    segment = shared_memory.SharedMemory(name=name, create=True, size=max(size, 1))
    for image, offset in zip(images, offsets):
        if image is not None:
            view = np.ndarray(image.shape, np.uint8, buffer=segment.buf, offset=offset)
            view[...] = image
            del view  # no view may outlive close()
    return segment, SharedImages(name, shapes, offsets)


def take_images(handle: SharedImages) -> list:
    """Copy the images of a handle out of their segment and detach from it (the segment
    stays for its owner to unlink).

    Returns:
        list: uint8 arrays, None where the handle has none.
    """
    segment = shared_memory.SharedMemory(name=handle.name, create=False)
    try:
        out = []
        for shape, offset in zip(handle.shapes, handle.offsets):
            if shape is None:
                out.append(None)
                continue
            view = np.ndarray(shape, np.uint8, buffer=segment.buf, offset=offset)
            out.append(view.copy())
            del view
        return out
    finally:
        segment.close()


def unlink_segment(segment) -> None:
    """Close and unlink a segment this process made (a second call does nothing)."""
    try:
        segment.close()
    except BufferError:  # a view is still alive somewhere: unlinking frees the name anyway
        pass
    try:
        segment.unlink()
    except FileNotFoundError:
        pass


class SharedSegments:
    """The segments of a stream still in use by workers; each is unlinked when its job ends,
    the rest by :meth:`close`."""

    def __init__(self):
        self._live: dict = {}
        self._lock = threading.Lock()

    def share(self, images: list) -> SharedImages:
        """:func:`share_images`, the segment kept until :meth:`free_when_done` or
        :meth:`close`."""
        segment, handle = share_images(images)
        with self._lock:
            self._live[handle.name] = segment
        return handle

    def free(self, name: str) -> None:
        with self._lock:
            segment = self._live.pop(name, None)
        if segment is not None:
            unlink_segment(segment)

    def free_when_done(self, handle: Optional[SharedImages], future: Future) -> None:
        """Unlink ``handle``'s segment as soon as ``future`` is done, however it ends."""
        if handle is not None:
            future.add_done_callback(lambda _: self.free(handle.name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def close(self) -> None:
        """Unlink every segment still here."""
        with self._lock:
            names = list(self._live)
        for name in names:
            self.free(name)
