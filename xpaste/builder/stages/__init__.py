"""The six stages of a bank build, one module each, behind the :class:`.base.Stage` protocol.

Per chunk (run together as one stream by :mod:`xpaste.builder.stream`): :mod:`.generate`,
:mod:`.segment`, :mod:`.score`. Per class: :mod:`.filter`, :mod:`.write`, :mod:`.report`.
Import the stage classes from their modules.
"""
