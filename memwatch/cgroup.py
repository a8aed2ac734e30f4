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
from .measures import CgroupPeak, CgroupUsage, MemoryLimit
from .procfs import PROC, flat_keyed, is_running

# How long a list of a watched cgroup's sub-cgroups (for counting their processes) is kept.
SUBDIRS_MAX_AGE_S = 10.0

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
    version, mountpoint, root, own = _memory_hierarchy(procfs)
    return version, _join(mountpoint, root, own)


def cgroup_directory(path: str, procfs: str = PROC) -> tuple[int, str]:
    """(version, directory) of the memory cgroup at ``path`` as /proc/PID/cgroup shows it."""
    version, mountpoint, root, _ = _memory_hierarchy(procfs)
    return version, _join(mountpoint, root, path)


def memory_mount(procfs: str = PROC) -> tuple[int, str]:
    """(version, directory) of the top of the memory hierarchy memwatch can see."""
    return cgroup_directory("/", procfs)


def _memory_hierarchy(procfs: str) -> tuple[int, str, str, str]:
    """(version, mount point, mount root, this process's path) of the memory hierarchy."""
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
            return 1, mountpoint, root, v1_path
        if fstype == "cgroup2" and v2_path is not None and v1_path is None:
            return 2, mountpoint, root, v2_path
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

    def counters(self) -> CgroupCounters:
        """The job cgroup's memory totals, read from files kept open (CgroupUnavailable if not)."""
        return CgroupCounters(self.version, self.path)

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


def _read_bytes(path: str) -> bytes:
    """The whole file, read to its end: a seq_file such as cgroup.procs returns about a
    page per read (fs/seq_file.c, seq_read_iter), however much more was asked for."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class CgroupCounters:
    """What the kernel sums for one cgroup and its descendants, read with pread on open files.

    One read of the totals costs the same for one process or thousands, where reading the
    processes costs one read each ("where the kernel already sums, read the sum"). They
    are the page counters whose high-water marks are the cgroup's peaks, page cache
    included: v1 memory.usage_in_bytes (RAM) and memory.memsw.usage_in_bytes (RAM + swap,
    with swap accounting), v2 memory.current and memory.swap.current. (memory.stat says
    the same split by kind, but its sums cost the kernel ~20x more to make.)
    ``nested``: count the processes of descendant cgroups too (a unit with Delegate=yes).
    """

    def __init__(self, version: int, path: str, *, nested: bool = False) -> None:
        self.version = version
        self.path = path
        self._nested = nested
        self._subdirs: list[str] = []
        self._subdirs_until = 0.0
        self._fds: dict[str, int] = {}
        if version == 1:
            names = {
                "ram": ["memory.usage_in_bytes"],
                "swap": ["memory.memsw.usage_in_bytes"],
                "peak": ["memory.memsw.max_usage_in_bytes", "memory.max_usage_in_bytes"],
            }
        else:
            names = {
                "ram": ["memory.current"],
                "swap": ["memory.swap.current"],
                "peak": ["memory.peak"],
            }
        for kind, candidates in names.items():
            found = [n for n in candidates if os.path.exists(os.path.join(path, n))]
            if found or kind == "ram":  # RAM is a must; swap and peak where the kernel has them
                self._fds[kind] = self._open(found[0] if found else candidates[0])

    def _open(self, name: str) -> int:
        try:
            return os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            self.close()
            raise CgroupUnavailable(f"cannot read {self.path}/{name}: {err.strerror}") from err

    def _counter(self, kind: str) -> int | None:
        fd = self._fds.get(kind)
        try:
            return None if fd is None else int(os.pread(fd, 64, 0))
        except (OSError, ValueError) as err:  # ENODEV once the cgroup is gone
            raise CgroupUnavailable(f"cannot read {self.path}: {err}") from err

    def read(self) -> CgroupUsage:
        """The cgroup's memory now; CgroupUnavailable once the cgroup was removed."""
        assert "ram" in self._fds, "read after close"
        ram = self._counter("ram") or 0
        swap = self._counter("swap")
        if swap is not None and self.version == 1:
            swap = max(0, swap - ram)  # memsw counts RAM + swap; read a moment apart
        return CgroupUsage(ram, swap)

    def peak_bytes(self) -> int | None:
        """The kernel's peak since the cgroup was made: RAM + swap on v1 (memsw, else RAM
        alone), RAM on v2 (its swap peak may come at another moment); None if unknown."""
        return self._counter("peak")

    def processes(self) -> int:
        """How many processes the cgroup holds (with ``nested``, its descendants' too).

        Building the list costs the kernel more than the memory totals (~10x on v1, where
        it sorts a pid array): a sampler counts them less often than it reads the totals.
        Descendant cgroups are looked for again every SUBDIRS_MAX_AGE_S.
        """
        count = _count_procs(self.path)
        if self._nested:
            now = time.monotonic()
            if now >= self._subdirs_until:
                self._subdirs = _subdirectories(self.path)
                self._subdirs_until = now + SUBDIRS_MAX_AGE_S
            count += sum(_count_procs(d) for d in self._subdirs)
        return count

    def pids(self) -> set[int]:
        """Processes in the cgroup itself now (not its descendants)."""
        try:
            return {int(p) for p in _read_bytes(os.path.join(self.path, "cgroup.procs")).split()}
        except OSError:
            return set()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def find_unit_cgroup(top: str, unit: str) -> str | None:
    """The directory of systemd unit ``unit`` below ``top``, or None while it has none.

    Units sit in slices (system.slice/foo.service, user.slice/user-1000.slice/...); the
    first directory named after the unit, searched breadth first, is its cgroup.
    """
    level = [top]
    while level:
        below = []
        for path in level:
            try:
                with os.scandir(path) as entries:
                    dirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue  # removed meanwhile
            for entry in dirs:
                if entry.name == unit:
                    return entry.path
                below.append(entry.path)
        level = below
    return None


def _subdirectories(path: str) -> list[str]:
    found = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    found.append(entry.path)
                    found.extend(_subdirectories(entry.path))
    except OSError:
        pass  # removed meanwhile: no processes there
    return found


def _count_procs(path: str) -> int:
    try:
        return _read_bytes(os.path.join(path, "cgroup.procs")).count(b"\n")
    except OSError:
        return 0  # removed meanwhile
