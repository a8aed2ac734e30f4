"""Full and read-only filesystems (a small tmpfs) and symlink loops at output and config
paths: the job's exit status and its summary are never lost, errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration.conftest import need

from memwatch.config import load_config
from memwatch.errors import ConfigError

pytestmark = pytest.mark.integration


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted at teardown."""
    need(os.geteuid() == 0, "needs root to mount a tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(directory: Path, leave_bytes: int = 0) -> None:
    """Fill the filesystem, then free ``leave_bytes`` again."""
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError:
            pass
        if leave_bytes:
            f.truncate(max(0, f.tell() - leave_bytes))


def _memwatch(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memwatch", "--no-cgroup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_samples_on_a_filesystem_that_fills_up_stop_with_a_warning_not_the_run(
    small_tmpfs: Path, tmp_path: Path
):
    _fill(small_tmpfs, leave_bytes=4096)  # the header and some rows fit
    samples, out = small_tmpfs / "s.csv", tmp_path / "s.json"
    # The job ends once the samples file has filled the last page (or after 60 s).
    job = (
        f"i=0; while [ $(stat -c %s {samples}) -lt 4096 ] && [ $i -lt 1200 ]; do "
        "sleep 0.05; i=$((i+1)); done; exit 3"
    )
    proc = _memwatch(
        tmp_path,
        "--interval", "0.005", "--samples", str(samples), "--json", str(out),
        "--", "sh", "-c", job,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    warnings = json.loads(out.read_text())["warnings"]
    assert any("writing stopped: No space left on device" in w for w in warnings), warnings


def test_json_on_a_full_filesystem_keeps_the_summary_and_says_so_in_one_line(
    small_tmpfs: Path, tmp_path: Path
):
    _fill(small_tmpfs)
    target = small_tmpfs / "s.json"
    proc = _memwatch(tmp_path, "--json", str(target), "--", "sh", "-c", "exit 3")
    assert proc.returncode == 125
    assert "memwatch: peak " in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"memwatch: error: cannot write --json {target}: No space left on device (the "
        "command ended with exit status 3; its summary is above)"
    )
    assert [p.name for p in small_tmpfs.iterdir()] == ["filler"]  # no temp file left


def test_json_on_a_read_only_filesystem_is_refused_before_the_job(
    small_tmpfs: Path, tmp_path: Path
):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    marker = tmp_path / "ran"
    proc = _memwatch(tmp_path, "--json", str(small_tmpfs / "s.json"), "--", "touch", str(marker))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"memwatch: error: --json {small_tmpfs / 's.json'}: cannot create a file in "
        f"{small_tmpfs} (Read-only file system); choose another path\n"
    )
    assert not marker.exists()


def test_a_symlink_loop_as_config_is_one_line(tmp_path: Path):
    loop = tmp_path / "memwatch.yaml"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError) as info:
        load_config(str(loop))
    assert info.value.problems == [f"{loop}: cannot read: Too many levels of symbolic links"]
