"""Argument checks: accepted values come back as plain types; rejected ones name the argument
and the value."""
import math

import numpy as np
import pytest

from xpaste.utils.checks import (check_bool, check_choice, check_non_empty_str,
                                 check_non_negative, check_number, check_pair, check_positive,
                                 check_prob, check_range)


def test_accepted_values_are_converted():
    assert check_prob('p', 1) == 1.0 and isinstance(check_prob('p', np.float32(0.5)), float)
    assert check_number('n', np.int64(3), 0, integer=True) == 3
    assert isinstance(check_number('n', np.int64(3), integer=True), int)
    assert check_positive('s', 0.1) == 0.1
    assert check_non_negative('k', 0, integer=True) == 0
    assert check_number('x', None, allow_none=True) is None
    assert check_number('x', -math.inf, finite=False) == -math.inf
    assert check_range('r', [0.1, 0.5], 0, lo_open=True) == (0.1, 0.5)
    assert check_pair('r', (3, 1), ordered=False, integer=True) == (3, 1)
    assert check_bool('b', np.bool_(True)) is True
    assert check_choice('m', 'a', ('a', 'b')) == 'a'
    assert check_non_empty_str('k', 'x') == 'x'


@pytest.mark.parametrize('call, match', [
    (lambda: check_prob('prob', 1.5), r'prob must lie in \[0, 1\], got 1.5'),
    (lambda: check_prob('prob', True), 'prob must be a finite number, got True'),
    (lambda: check_number('x', float('nan')), 'x must be a finite number, got nan'),
    (lambda: check_number('x', float('nan'), finite=False), 'x must be a number, got nan'),
    (lambda: check_number('x', math.inf), 'got inf'),
    (lambda: check_number('x', '3'), "x must be a finite number, got '3'"),
    (lambda: check_number('n', 1.5, integer=True), 'n must be an int, got 1.5'),
    (lambda: check_number('n', 5, 0, 5, hi_open=True), r'n must lie in \[0, 5\), got 5'),
    (lambda: check_positive('s', 0), r's must lie in \(0, inf\), got 0'),
    (lambda: check_non_negative('k', -1, integer=True), r'k must lie in \[0, inf\), got -1'),
    (lambda: check_number('x', None), 'x must be a finite number, got None'),
    (lambda: check_range('size_range', (0.5, 0.1)), r'low <= high, got \(0.5, 0.1\)'),
    (lambda: check_range('size_range', (0, 0.1), 0, lo_open=True),
     r'size_range must be a \(low, high\) pair of numbers within \(0, inf\), got \(0, 0.1\)'),
    (lambda: check_range('r', 0.5), r'r must be a \(low, high\) pair, got 0.5'),
    (lambda: check_range('r', 'ab'), "got 'ab'"),
    (lambda: check_pair('r', (1, 2, 3)), r'got \(1, 2, 3\)'),
    (lambda: check_bool('flip', 1), 'flip must be True or False, got 1'),
    (lambda: check_choice('mode', 'x', ('a', 'b')), r"mode must be one of \('a', 'b'\), got 'x'"),
    (lambda: check_choice('mode', ['a'], {'a'}), r"got \['a'\]"),
    (lambda: check_non_empty_str('key', ''), "key must be a non-empty string, got ''"),
    (lambda: check_number('n', 0, 1, integer=True, hint='use 1'),
     r'n must lie in \[1, inf\), got 0; use 1$'),
    (lambda: check_number('n', 'a', integer=True, hint='use 1'), "n must be an int, got 'a'; use 1$"),
    (lambda: check_choice('mode', 'x', ('a', 'b'), hint='see the docs'), "got 'x'; see the docs$"),
])
def test_rejected_values_raise_value_error_with_name_and_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
