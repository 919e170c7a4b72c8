"""Argument checks shared by the package: each raises ``ValueError`` naming the argument and value.

Every check returns the value converted to a plain Python type (``float``, ``int``, ``tuple``),
so a constructor can write ``self.prob = check_prob('prob', prob)``. ``bool`` is never accepted as
a number (``True`` is an ``int`` to Python, not a count or a probability to a config).
"""
import math
from collections.abc import Collection, Sequence

import numpy as np

_INT_TYPES = (int, np.integer)
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    """``'[0, 1)'``-style text of an interval; a missing bound is an open infinity."""
    left = '(' if lo_open or lo is None else '['
    right = ')' if hi_open or hi is None else ']'
    return f'{left}{"-inf" if lo is None else lo}, {"inf" if hi is None else hi}{right}'


def _hint(hint: str) -> str:
    """``'; <hint>'`` to end a message with, or ``''`` without a hint."""
    return f'; {hint}' if hint else ''


def check_number(name: str,
                 value,
                 lo=None,
                 hi=None,
                 *,
                 integer: bool = False,
                 lo_open: bool = False,
                 hi_open: bool = False,
                 allow_none: bool = False,
                 finite: bool = True,
                 hint: str = ''):
    """A finite number (an int if ``integer``) in the interval from ``lo`` to ``hi``.

    Args:
        name (str): Argument name, used in the message.
        value: The value to check.
        lo (float, optional): Lower bound (inclusive unless ``lo_open``). Defaults to None.
        hi (float, optional): Upper bound (inclusive unless ``hi_open``). Defaults to None.
        integer (bool): Require an int. Defaults to False.
        lo_open (bool): Exclude ``lo``. Defaults to False.
        hi_open (bool): Exclude ``hi``. Defaults to False.
        allow_none (bool): Accept None (returned as is). Defaults to False.
        finite (bool): Reject infinities (NaN is always rejected). Defaults to True.
        hint (str): How to fix the value, appended to the message after ``'; '``.
            Defaults to ''.

    Returns:
        int | float | None: ``int(value)`` if ``integer`` else ``float(value)``.
    """
    if value is None and allow_none:
        return None
    kinds = _INT_TYPES if integer else _NUMBER_TYPES
    what = 'an int' if integer else ('a finite number' if finite else 'a number')
    if allow_none:
        what += ' or None'
    if isinstance(value, bool) or not isinstance(value, kinds) or math.isnan(value) \
            or (finite and math.isinf(value)):
        raise ValueError(f'{name} must be {what}, got {value!r}{_hint(hint)}')
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        raise ValueError(f'{name} must lie in {_interval(lo, hi, lo_open, hi_open)}, '
                         f'got {value!r}{_hint(hint)}')
    return int(value) if integer else float(value)


def check_prob(name: str, value) -> float:
    """A probability in [0, 1]."""
    return check_number(name, value, 0, 1)


def check_positive(name: str, value, *, integer: bool = False):
    """A number (an int if ``integer``) > 0."""
    return check_number(name, value, 0, lo_open=True, integer=integer)


def check_non_negative(name: str, value, *, integer: bool = False):
    """A number (an int if ``integer``) >= 0."""
    return check_number(name, value, 0, integer=integer)


def check_bool(name: str, value) -> bool:
    """A ``bool`` (not merely truthy: ``flip=1`` in a config is more likely a mistake)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f'{name} must be True or False, got {value!r}')
    return bool(value)


def check_choice(name: str, value, choices: Collection, *, hint: str = ''):
    """One of ``choices`` (compared with ``in``).

    Args:
        name (str): Argument name, used in the message.
        value: The value to check.
        choices (Collection): The accepted values.
        hint (str): How to fix the value, appended to the message after ``'; '``.
            Defaults to ''.

    Returns:
        The value, unchanged.
    """
    try:
        ok = value in choices
    except TypeError:  # e.g. an unhashable value against a set
        ok = False
    if not ok:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}{_hint(hint)}')
    return value


def check_pair(name: str,
               value,
               lo=None,
               hi=None,
               *,
               ordered: bool = True,
               lo_open: bool = False,
               integer: bool = False) -> tuple:
    """A ``(low, high)`` pair of numbers within ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``).

    Args:
        name (str): Argument name, used in the message.
        value: The value to check: a sequence of two numbers.
        lo (float, optional): Lower bound of both items. Defaults to None.
        hi (float, optional): Upper bound of both items. Defaults to None.
        ordered (bool): Require ``low <= high``. Defaults to True.
        lo_open (bool): Exclude ``lo``. Defaults to False.
        integer (bool): Require ints. Defaults to False.

    Returns:
        tuple: ``(low, high)`` as floats (ints if ``integer``).
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) \
            or len(value) != 2:
        raise ValueError(f'{name} must be a (low, high) pair, got {value!r}')
    try:
        pair = tuple(check_number(name, v, lo, hi, integer=integer, lo_open=lo_open) for v in value)
    except ValueError:
        bounds = '' if lo is None and hi is None else \
            f' within {_interval(lo, hi, lo_open, False)}'
        raise ValueError(f'{name} must be a (low, high) pair of '
                         f'{"ints" if integer else "numbers"}{bounds}, got {value!r}') from None
    if ordered and pair[0] > pair[1]:
        raise ValueError(f'{name} must be (low, high) with low <= high, got {tuple(value)!r}')
    return pair


def check_range(name: str, value, lo=None, hi=None, *, lo_open: bool = False) -> tuple:
    """A ``(low, high)`` range with ``low <= high`` inside ``[lo, hi]``; see :func:`check_pair`."""
    return check_pair(name, value, lo, hi, ordered=True, lo_open=lo_open)


def check_non_empty_str(name: str, value) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f'{name} must be a non-empty string, got {value!r}')
    return value
