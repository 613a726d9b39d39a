"""Fixtures of the cluster tests."""

import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest


@contextmanager
def _polling(url: str, every: float = 0.1):
    """Request ``url`` repeatedly in a thread while the block runs; yields the status codes."""
    done, answers = threading.Event(), []

    def poll():
        while not done.is_set():
            with urllib.request.urlopen(url, timeout=5) as response:
                answers.append(response.status)
            time.sleep(every)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        yield answers
    finally:
        done.set()
        poller.join()


@pytest.fixture
def poll_dashboard():
    """``with poll_dashboard(url) as answers:`` collects HTTP status codes while a campaign runs."""
    return _polling
