"""Shared fixtures: every test runs with a hard timeout (pytest-timeout, set in pyproject)."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def no_leftover_tasks():
    """Assert that a test leaves no asyncio task of the framework behind."""

    def check() -> None:
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        assert not left, f"tasks left behind: {[t.get_name() for t in left]}"

    return check
