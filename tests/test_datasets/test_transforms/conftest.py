"""Fixtures of the transform tests."""
import pytest
from paste_helpers import textured_crop, write_bank


@pytest.fixture
def bank_two(tmp_path):
    """Two categories, three textured ellipses each (20-40 px)."""
    items = [(textured_crop(20 + 4 * i, 24 + 3 * i, seed=i), 'cat' if i % 2 else 'dog')
             for i in range(6)]
    return write_bank(tmp_path / 'bank', items)
