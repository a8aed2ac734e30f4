"""The fault-injection suite shares the integration tests' fixtures: real processes, real
cgroups, each killed or removed at teardown even when the test fails."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from integration.conftest import cli, make_cgroup, memwatch, started  # noqa: F401


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
