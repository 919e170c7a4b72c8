"""Fixtures shared by the builder tests."""
import logging

import pytest
from mmengine.logging import MMLogger


@pytest.fixture
def log_messages():
    """Messages logged through mmengine's current logger during the test (a list that fills
    as the test runs)."""
    messages = []

    class Collect(logging.Handler):

        def emit(self, record):
            messages.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect()
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
