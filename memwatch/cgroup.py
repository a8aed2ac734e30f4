"""A memory cgroup for the job: the kernel's exact peak of RAM and RAM+swap, and OOM kills.

The job cgroup is made *inside* memwatch's own memory cgroup, never beside it, so a job
started in a container, a batch allocation or a systemd slice stays under the limits it
was given (Documentation/admin-guide/cgroup-v2.rst, "Top-down Constraint").

cgroup v1 (memory controller mounted on its own): memory.max_usage_in_bytes is the RAM
peak, memory.memsw.max_usage_in_bytes the RAM+swap peak as one counter (exact), and
memory.oom_control counts oom_kill (Documentation/admin-guide/cgroup-v1/memory.rst).
cgroup v2: memory.peak (Linux >= 5.19) and memory.swap.peak (>= 6.5) are separate peaks, so
their sum bounds RAM+swap from above; memory.events counts oom_kill.
"""

from __future__ import annotations

import errno
import os
import re
import time

from .errors import CgroupUnavailable
from .procfs import PROC, flat_keyed, is_running
from .types import CgroupPeak, MemoryLimit

# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 bytes with
# 4 KiB pages): anything this large is no limit. v2 says "max".
UNLIMITED_BYTES = 1 << 62
# What JobCgroup.create names a job cgroup (memwatch-PID) and, on v2, memwatch's own leaf.
JOB_CGROUP_NAME = re.compile(r"memwatch-([0-9]+)(-self)?")


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def find_memory_cgroup(procfs: str = PROC) -> tuple[int, str]:
    """Return (version, directory) of this process's memory cgroup.

    Prefers a v1 memory hierarchy when one is mounted (on hybrid systems the memory
    controller lives there, and the v2 tree has none).
    """
    try:
        membership = _read_text(f"{procfs}/self/cgroup")
        mountinfo = _read_text(f"{procfs}/self/mountinfo")
    except OSError as err:
        raise CgroupUnavailable(f"cannot read {procfs}/self/cgroup: {err.strerror}") from err
    v1_path = v2_path = None
    for line in membership.splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        root, mountpoint, fstype, options = fields[3], fields[4], tail[0], tail[-1]
        if fstype == "cgroup" and v1_path is not None and "memory" in options.split(","):
            return 1, _join(mountpoint, root, v1_path)
        if fstype == "cgroup2" and v2_path is not None and v1_path is None:
            return 2, _join(mountpoint, root, v2_path)
    raise CgroupUnavailable("no memory cgroup hierarchy is mounted")


def memory_limit(procfs: str = PROC) -> MemoryLimit | None:
    """The smallest memory limit on this process's cgroup and its ancestors; None if none.

    Limits are hierarchical: a job in a container or a batch allocation is OOM-killed at
    the tightest limit above it, wherever in the tree that is set.
    """
    try:
        version, path = find_memory_cgroup(procfs)
    except CgroupUnavailable:
        return None
    limit_file, usage_file = (
        ("memory.limit_in_bytes", "memory.usage_in_bytes")
        if version == 1
        else ("memory.max", "memory.current")
    )
    tightest = None
    while True:
        try:
            text = _read_text(os.path.join(path, limit_file)).strip()
            limit = UNLIMITED_BYTES if text == "max" else int(text)
            if limit < UNLIMITED_BYTES and (tightest is None or limit < tightest.limit_bytes):
                usage = int(_read_text(os.path.join(path, usage_file)))
                tightest = MemoryLimit(version, path, limit, usage)
        except (OSError, ValueError):
            pass  # no memory controller at this level (or above the mount): look further up
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return tightest


def _join(mountpoint: str, mount_root: str, path: str) -> str:
    # Inside a container the mount's root may be this cgroup itself (mountinfo field 4).
    if mount_root != "/" and path.startswith(mount_root):
        path = path[len(mount_root) :]
    return os.path.join(mountpoint, path.lstrip("/")).rstrip("/") or "/"


class JobCgroup:
    """A cgroup made for one job; ``remove()`` restores everything it changed."""

    def __init__(self, version: int, path: str, parent: str) -> None:
        self.version = version
        self.path = path
        self.parent = parent
        self._self_leaf: str | None = None  # v2: where memwatch moved itself, if it had to
        self.stale_removed: tuple[str, ...] = ()  # left by killed memwatches, removed by create
        self._enabled_memory = False  # v2: whether memwatch enabled +memory in its parent

    @property
    def procs_path(self) -> str:
        """Write a pid here to put that process (and its future children) in the job cgroup."""
        return os.path.join(self.path, "cgroup.procs")

    @classmethod
    def create(cls, name: str, *, procfs: str = PROC) -> JobCgroup:
        """Make ``name`` inside memwatch's own memory cgroup; CgroupUnavailable says why not."""
        version, own = find_memory_cgroup(procfs)
        job = cls(version, os.path.join(own, name), own)
        job.stale_removed = tuple(remove_stale(own, procfs))
        try:
            if version == 1:
                _mkdir(job.path)
            else:
                job._create_v2(own, name)
        except (OSError, CgroupUnavailable) as err:
            job._undo_v2()  # put memwatch back where it was, whatever step failed
            if isinstance(err, CgroupUnavailable):
                raise
            raise CgroupUnavailable(f"cannot create a cgroup in {own}: {err.strerror}") from err
        return job

    def _create_v2(self, own: str, name: str) -> None:
        if "memory" not in _read_text(os.path.join(own, "cgroup.controllers")).split():
            raise CgroupUnavailable(
                f"the memory controller is not delegated to {own} "
                "(try: systemd-run --user --scope -p Delegate=yes memwatch ...)"
            )
        subtree = os.path.join(own, "cgroup.subtree_control")
        if "memory" not in _read_text(subtree).split():
            # "No internal processes": a cgroup that hands controllers to its children may
            # hold no processes itself, so memwatch first moves into a leaf of its own.
            leaf = os.path.join(own, name + "-self")
            _mkdir(leaf)
            self._self_leaf = leaf
            _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
            try:
                _write(subtree, "+memory")
                self._enabled_memory = True
            except OSError as err:
                raise CgroupUnavailable(
                    f"cannot enable the memory controller under {own} ({err.strerror}): other "
                    "processes share memwatch's cgroup (run it in a scope of its own, e.g. "
                    "systemd-run --user --scope -p Delegate=yes memwatch ...)"
                ) from err
        _mkdir(self.path)
        if not os.path.exists(os.path.join(self.path, "memory.peak")):
            os.rmdir(self.path)
            raise CgroupUnavailable(
                "this kernel has no memory.peak (cgroup v2 needs Linux >= 5.19)"
            )

    def pids(self) -> set[int]:
        """Processes currently in the job cgroup."""
        try:
            return {int(p) for p in _read_text(self.procs_path).split()}
        except OSError:
            return set()

    def read_peak(self) -> CgroupPeak:
        """The kernel's peaks and OOM-kill count for this cgroup."""
        # The peaks count page cache the job brought in (files it read or wrote), which the
        # kernel reclaims under a limit; what is still cached at the end says how much.
        stat = self._text("memory.stat")
        if self.version == 1:
            ram = self._int("memory.max_usage_in_bytes")
            total = self._int("memory.memsw.max_usage_in_bytes")
            oom = flat_keyed(self._text("memory.oom_control"), "oom_kill") or 0
            cache = sum(flat_keyed(stat, f"total_{k}_file") or 0 for k in ("active", "inactive"))
            return CgroupPeak(1, ram, total, True, oom, cache)
        ram = self._int("memory.peak")
        swap = self._int("memory.swap.peak")
        total = ram + swap if ram is not None and swap is not None else None
        oom = flat_keyed(self._text("memory.events"), "oom_kill") or 0
        cache = sum(flat_keyed(stat, f"{k}_file") or 0 for k in ("active", "inactive"))
        return CgroupPeak(2, ram, total, swap == 0, oom, cache)

    def _text(self, name: str) -> str:
        try:
            return _read_text(os.path.join(self.path, name))
        except OSError:
            return ""

    def _int(self, name: str) -> int | None:
        text = self._text(name).strip()
        return int(text) if text else None

    def remove(self, *, attempts: int = 50) -> None:
        """Move leftover processes (daemonized descendants) to memwatch's side; delete it.

        rmdir can fail with EBUSY for a moment while exiting tasks are still charged: retry.
        """
        leftovers = sorted(self.pids())
        destination = self._self_leaf or self.parent
        for pid in leftovers:
            try:
                _write(os.path.join(destination, "cgroup.procs"), str(pid))
            except OSError:
                pass  # exited meanwhile
        for _ in range(attempts):
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)
        if self._self_leaf is not None:
            self._undo_v2()

    def _undo_v2(self) -> None:
        leaf, self._self_leaf = self._self_leaf, None
        if leaf is None:
            return
        try:
            if self._enabled_memory:
                _write(os.path.join(self.parent, "cgroup.subtree_control"), "-memory")
                self._enabled_memory = False
            _write(os.path.join(self.parent, "cgroup.procs"), str(os.getpid()))
            os.rmdir(leaf)
        except OSError:
            # Daemonized leftovers moved into the leaf keep it alive, and another memwatch
            # may still need the controller: leave what cannot be undone as it is.
            pass


def remove_stale(parent: str, procfs: str = PROC) -> list[str]:
    """Remove the empty job cgroups in ``parent`` whose memwatch is gone; their paths.

    A memwatch killed with SIGKILL cannot remove its job cgroup. Its pid in the name says
    whose it was: one whose process no longer runs is stale. A cgroup that still holds a
    process (daemonized leftovers of the job) or a child cgroup refuses rmdir (EBUSY,
    ENOTEMPTY) and is left as it is. A stale one whose pid was reused stays until that
    process ends too.
    """
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    removed = []
    for name in names:
        match = JOB_CGROUP_NAME.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if is_running(int(match.group(1)), procfs):
            continue
        path = os.path.join(parent, name)
        try:
            os.rmdir(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        # Left by a killed memwatch that had the same pid (containers reuse small pids).
        # Its peak counters still hold the old job's figures: remake it, if it is empty.
        if _read_text(os.path.join(path, "cgroup.procs")).strip():
            raise
        os.rmdir(path)
        os.mkdir(path)
