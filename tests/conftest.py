"""Shared fixtures: a tiny toy LVIS world made once per test session."""
import os

import pytest

# One thread per test process keeps the suite predictable on small CI machines.
os.environ.setdefault('OMP_NUM_THREADS', '1')

TINY_WORLD = dict(num_classes=8, num_train=24, num_val=8, min_size=128, max_size=160, seed=0)


@pytest.fixture(scope='session')
def tiny_toy_lvis(tmp_path_factory):
    """A toy LVIS world small enough to train a few iterations on: returns its root folder."""
    from xpaste.toy import make_toy_lvis
    root = tmp_path_factory.mktemp('toy_lvis')
    make_toy_lvis(str(root), **TINY_WORLD)
    return root
