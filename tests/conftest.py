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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="run the property-based stress suite (tests/stress) with thousands of random examples",
    )


@pytest.fixture
def stress(request: pytest.FixtureRequest) -> bool:
    """True when pytest runs with ``--stress`` (the stress suite then runs thousands of examples)."""
    return bool(request.config.getoption("--stress"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--stress"):
        # thousands of examples take minutes: each example bounds itself, the test as a whole not
        for item in items:
            if "stress" in item.nodeid.split("/"):
                item.add_marker(pytest.mark.timeout(0))
