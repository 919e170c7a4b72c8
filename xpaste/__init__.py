"""xpaste: scalable generative copy-paste (X-Paste) for MMDetection 3.x.

Importing :mod:`xpaste.datasets` registers ``InstanceBank`` and ``XPaste`` into mmdet's
registries; configs do it with
``custom_imports = dict(imports=['xpaste.datasets'], allow_failed_imports=False)``.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info']
