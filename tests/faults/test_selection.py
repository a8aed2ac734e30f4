"""A process any user starts must not join a job by its name alone (issue: an unprivileged
process named "postgres" added 500 MiB to the job postgres)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from integration.conftest import need

from memwatch.config import Selector, parse_config
from memwatch.errors import ConfigError
from memwatch.tree import ProcessTable, select

pytestmark = pytest.mark.integration


def test_user_selector_and_config_resolve_a_user_name_to_its_uid():
    config = parse_config(
        "watch:\n  - name: pg\n    process_name: postgres\n    user: root\n", "m.yaml"
    )
    assert config.watch[0].selector == Selector(name="postgres", uid=0)
    with pytest.raises(ConfigError) as info:
        parse_config("watch:\n  - name: pg\n    user: no-such-user-xyz\n", "m.yaml")
    assert info.value.problems == [
        "m.yaml:3: watch[0].user: no such user on this machine (give a user name or a numeric "
        'uid) (got "no-such-user-xyz")'
    ]


def test_an_absolute_process_name_is_the_executable_path():
    config = parse_config("watch:\n  - name: ng\n    process_name: /usr/sbin/nginx\n", "m.yaml")
    assert config.watch[0].selector.name == "/usr/sbin/nginx"


def _spawn(started, exe: Path, user: str | None) -> subprocess.Popen[str]:
    def become() -> None:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)

    proc = subprocess.Popen([str(exe), "120"], preexec_fn=become, start_new_session=True, text=True)
    started.append(proc)
    return proc


def _wait_listed(table: ProcessTable, pids: set[int]) -> None:
    deadline = time.monotonic() + 60
    while True:
        table.refresh()
        if pids <= table.stats.keys() and all(table.exe(p) for p in pids):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"processes {pids} never showed their executable")
        time.sleep(0.02)


@pytest.fixture
def shared_dir():
    """A directory every user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="memwatch-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_look_alike_of_another_user_joins_neither_by_user_nor_by_path(shared_dir, started):
    need(os.geteuid() == 0, "needs root to start a process as another user")
    real_dir, fake_dir = shared_dir / "opt", shared_dir / "home"
    real_dir.mkdir(mode=0o755)
    fake_dir.mkdir(mode=0o755)
    real = real_dir / "mw-lookalike"
    fake = fake_dir / "mw-lookalike"  # the same name, copied by "another user"
    shutil.copy("/bin/sleep", real)
    shutil.copy("/bin/sleep", fake)
    fake.chmod(0o755)
    ours = _spawn(started, real, None)
    theirs = _spawn(started, fake, "nobody")
    table = ProcessTable()
    _wait_listed(table, {ours.pid, theirs.pid})
    candidates = {ours.pid, theirs.pid}
    # By name alone both match: that is the risk the config comments name.
    assert select(Selector(name="mw-lookalike"), table, candidates) == candidates
    assert select(Selector(name="mw-lookalike", uid=0), table, candidates) == {ours.pid}
    assert select(Selector(name=str(real)), table, candidates) == {ours.pid}
