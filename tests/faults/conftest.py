"""The fault-injection suite shares the integration tests' fixtures: real processes, real
cgroups, each killed or removed at teardown even when the test fails."""

from integration.conftest import cli, make_cgroup, memwatch, started  # noqa: F401
