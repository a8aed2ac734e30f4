"""`memwatch -- cmd`: spawn the job, sample its tree, wait, and summarise. The OS edge for a run."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .backend import Backend, open_backend
from .cgroup import JobCgroup
from .console import say
from .errors import CgroupUnavailable, CommandNotExecutable, CommandNotFound, UsageError
from .limits import MAX_INTERVAL_S, MIN_INTERVAL_S
from .measures import RunSummary, Sample
from .procfs import PROC, read_shmem_bytes, read_vmstat
from .report import signal_name
from .sampler import Sampler
from .summary import Observed, summarise

# getattr: Windows has neither SIGHUP nor SIGQUIT (nor SIGCHLD below).
FORWARDED_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)
LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SI_KERNEL = 0x80  # si_code of signals the kernel raised itself, e.g. Ctrl-C on a terminal


def _subreaper(on: bool | None = None) -> bool | None:
    """Set (``on`` given) or read this process's child-subreaper flag; None if unsupported.

    Orphans of the job (a grandchild that double-forks to daemonize) are reparented to
    the nearest subreaper instead of init, so they stay in the tree (prctl(2), Linux only).
    """
    prctl = _prctl()
    if prctl is None:
        return None
    if on is None:
        flag = ctypes.c_int()
        ok = prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
        return bool(flag.value) if ok else None
    return True if prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0 else None


def _prctl() -> Callable[..., int] | None:
    """libc's prctl(2), looked up in memwatch (never between fork and exec: dlopen there
    may deadlock on a lock another thread held at fork); None where there is none."""
    if not LINUX:
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl: Callable[..., int], parent: int) -> None:
    """In the job, before exec: get SIGTERM when memwatch dies, even of SIGKILL.

    A job whose memwatch is gone runs on unmeasured, and nobody waits for its exit status:
    the scheduler or the user who killed memwatch believes the job ended with it. SIGTERM,
    as if memwatch had been stopped the usual way (it forwards a SIGTERM it receives), so
    the job may still clean up. prctl(2): the signal comes when the thread that forked
    the job ends (measure() blocks in that thread until the job ends); it is cleared by
    exec of a set-user-ID program; and a parent that died before the call is not seen, so
    the parent is checked afterwards. Only the job itself gets it: descendants it started
    get what it passes on to them, as when memwatch forwards a signal.
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


class _SignalForwarder:
    """Passes SIGINT/TERM/HUP/QUIT sent to memwatch on to the job.

    The signals are blocked in every memwatch thread and collected here with
    sigwaitinfo, so memwatch itself never dies of them before the job has ended and the
    summary is written. Signals raised by the terminal (Ctrl-C, Ctrl-\\) already went to
    the whole foreground process group: they are passed on only if the job has left
    memwatch's group. (A signal sent with kill(-PGID) to the whole group reaches the job
    twice: from the sender and from memwatch; nothing tells the two kinds apart.)
    SIGCHLD is waited for too, to say when the job stops (SIGSTOP, SIGTSTP).
    """

    WAITED = FORWARDED_SIGNALS | ({signal.SIGCHLD} if hasattr(signal, "SIGCHLD") else set())

    def __init__(self, pid: int, say: Callable[[str], None] = say) -> None:
        self._pid = pid
        self._say = say
        # The first stop signal memwatch received (forwarded, or delivered by the terminal
        # to the whole group): a sweep stops there even if the job caught it and exited 0.
        self.received: int | None = None
        self._stopping = False
        self._lock = threading.Lock()  # the thread cannot end between the two steps of stop()
        self._thread = threading.Thread(target=self._run, name="memwatch-signals")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._thread.ident is not None:
                # Wakes the thread's sigwaitinfo: a SIGCHLD directed at that thread alone.
                signal.pthread_kill(self._thread.ident, signal.SIGCHLD)
        self._thread.join()
        # Drop what arrived after the job ended (nothing left to forward to), but remember it.
        while (info := signal.sigtimedwait(self.WAITED, 0)) is not None:
            self._note(info.si_signo)

    def _note(self, signo: int) -> None:
        if signo in FORWARDED_SIGNALS and self.received is None:
            self.received = signo

    def _run(self) -> None:
        # sigwaitinfo, not sigtimedwait with a timeout: when memwatch is stopped (Ctrl-Z,
        # SIGSTOP) for longer than that timeout, CPython's sigtimedwait returns a siginfo
        # it never filled in (Modules/signalmodule.c: EINTR past the deadline breaks out
        # of the retry loop to fill_siginfo), and a garbage signal number was "forwarded".
        # Runs until stop(): the job is not reaped before, so its pid is not reused.
        while True:
            info = signal.sigwaitinfo(self.WAITED)
            self._note(info.si_signo)
            with self._lock:
                if self._stopping:
                    return
            if info.si_signo == signal.SIGCHLD:
                if info.si_pid == self._pid and info.si_code == os.CLD_STOPPED:
                    self._say(
                        f"memwatch: the command (pid {self._pid}) is stopped by "
                        f"{signal_name(info.si_status)}; memwatch waits for it to go on "
                        f"(kill -CONT {self._pid}) or end"
                    )
                continue
            if info.si_code == SI_KERNEL and self._job_in_our_group():
                continue
            self._forward(info.si_signo)

    def _forward(self, signo: int) -> None:
        try:
            os.kill(self._pid, signo)
            # A stopped job acts on no signal but SIGKILL until it is continued: follow
            # with SIGCONT, as systemd does after its KillSignal= (systemd.kill(5)). Every
            # forwarded signal ends a job by default; to a running job SIGCONT is a no-op.
            os.kill(self._pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def _job_in_our_group(self) -> bool:
        try:
            return os.getpgid(self._pid) == os.getpgrp()
        except ProcessLookupError:
            return True


def _spawn(
    command: Sequence[str],
    cgroup: JobCgroup | None,
    sigmask: set[int | signal.Signals] | None,
    stdio: tuple[int | None, int | None],
) -> subprocess.Popen[bytes]:
    join_fd = os.open(cgroup.procs_path, os.O_WRONLY) if cgroup else None

    parent, prctl = os.getpid(), _prctl()

    def in_child() -> None:
        # Runs between fork and exec: join the job cgroup before the command allocates
        # anything, and give it back the signal mask memwatch blocked for itself.
        if join_fd is not None:
            os.write(join_fd, str(os.getpid()).encode())
        if sigmask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)
        if prctl is not None:
            _die_with_parent(prctl, parent)

    # Windows has no preexec_fn; where there is nothing to do between fork and exec none
    # is passed (so it stays usable there, and Python may spawn the faster way).
    preexec = in_child if prctl or join_fd is not None or sigmask is not None else None
    path = command[0] if "/" in command[0] else shutil.which(command[0]) or command[0]
    try:
        try:
            return subprocess.Popen(
                list(command), stdin=stdio[0], stdout=stdio[1], preexec_fn=preexec
            )
        except OSError as err:
            if err.errno != errno.ENOEXEC:
                raise
            # A script without a #! line: run it with /bin/sh, as execvp(3) and shells do.
            return subprocess.Popen(
                ["/bin/sh", path, *command[1:]],
                stdin=stdio[0],
                stdout=stdio[1],
                preexec_fn=preexec,
            )
    except FileNotFoundError as err:
        if os.path.exists(path):
            raise CommandNotExecutable(
                f"{command[0]}: cannot execute: bad interpreter (the program its #! line "
                "names does not exist)"
            ) from err
        raise CommandNotFound(f"{command[0]}: command not found") from err
    except PermissionError as err:
        reason = "is a directory" if os.path.isdir(path) else "permission denied"
        raise CommandNotExecutable(f"{command[0]}: cannot execute: {reason}") from err
    except OSError as err:
        raise CommandNotExecutable(f"{command[0]}: cannot execute: {err.strerror}") from err
    finally:
        if join_fd is not None:
            os.close(join_fd)


def interval_problem(interval_s: float) -> str | None:
    """Why ``interval_s`` cannot be a sampling interval, or None if it can."""
    if MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        return None
    return (
        f"must be at least {MIN_INTERVAL_S} s and at most {MAX_INTERVAL_S:g} s (got {interval_s:g})"
    )


def _reap(members: dict[int, int], root_pid: int) -> None:
    # waitpid on a specific pid never steals another child's status; ECHILD just means
    # the process is not (or no longer) memwatch's child.
    for pid in members:
        if pid != root_pid:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _reap_job(child: subprocess.Popen[bytes]) -> tuple[int, int | None]:
    """Reap the job: its exit code as Popen has it, and its raw ru_maxrss (None if unknown)."""
    if not hasattr(os, "wait4"):  # Windows: no rusage
        return child.wait(), None
    _, status, rusage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), rusage.ru_maxrss


@dataclass
class _Setup:
    """What measure() changed before starting the job, and how to undo it (``undo``)."""

    warnings: list[str]
    spawner_hwm_bytes: int
    subreaper: bool
    was_subreaper: bool | None
    cgroup: JobCgroup | None
    oom_before: int | None
    shmem_before: int | None  # the system's Shmem before the job, read only without a cgroup
    old_mask: set[int | signal.Signals] | None  # the mask to restore; None: nothing was blocked

    def undo(self) -> None:
        if self.cgroup:
            self.cgroup.remove()
        if self.old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old_mask)
        if self.subreaper and not self.was_subreaper:
            _subreaper(False)  # a library call must not leave the caller changed


def measure(
    command: Sequence[str],
    *,
    interval_s: float = 0.1,
    pss: bool = False,
    use_cgroup: bool = True,
    on_sample: Callable[[Sample], None] | None = None,
    forward_signals: bool = False,
    job: str | None = None,
    size: float | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    procfs: str = PROC,
    backend: str = "auto",
) -> RunSummary:
    """Run ``command`` to completion and return its true peak memory and how it was found.

    ``forward_signals`` (the CLI's mode) blocks SIGINT/TERM/HUP/QUIT in the calling
    process while the command runs and forwards them to it. ``stdin``/``stdout`` are file
    descriptors for the command (subprocess.DEVNULL works); None inherits memwatch's.
    ``backend`` samples through "proc" (Linux /proc) or "psutil" (any platform, fewer
    figures: the summary's warnings name those missing); "auto" is proc where /proc is.
    """
    if not command:
        raise UsageError("no command given: put it after '--', e.g. memwatch -- python job.py")
    problem = interval_problem(interval_s)
    if problem:
        raise UsageError(f"--interval {problem}")
    reader = open_backend(backend, procfs=procfs)
    setup = _prepare(reader, use_cgroup=use_cgroup, forward_signals=forward_signals, procfs=procfs)
    try:
        observed = _execute(
            command, setup, reader, interval_s, pss, on_sample, (stdin, stdout), procfs
        )
    finally:
        setup.undo()
    return summarise(
        command, observed, setup.warnings, interval_s=interval_s, pss=pss, job=job, size=size
    )


def _prepare(reader: Backend, *, use_cgroup: bool, forward_signals: bool, procfs: str) -> _Setup:
    """Become a subreaper, make the job cgroup, block the forwarded signals; say what failed."""
    warnings: list[str] = []
    spawner_hwm_bytes = reader.own_hwm_bytes()
    was_subreaper = _subreaper()
    subreaper = bool(_subreaper(True))
    if not subreaper:
        warnings.append(
            "cannot become a child subreaper: daemonized descendants may be missed"
            if LINUX
            else "no child subreaper on this platform (Linux only): daemonized descendants "
            "may be missed"
        )
    cgroup = None
    if use_cgroup and not LINUX:
        warnings.append(
            "no cgroup peak on this platform (Linux only): the peak comes from sampling"
        )
    elif use_cgroup:
        try:
            cgroup = JobCgroup.create(f"memwatch-{os.getpid()}", procfs=procfs)
            if cgroup.stale_removed:
                warnings.append(
                    f"removed {len(cgroup.stale_removed)} empty job cgroup(s) left by memwatch "
                    f"processes that were killed: {', '.join(cgroup.stale_removed)}"
                )
        except CgroupUnavailable as err:
            warnings.append(f"no job cgroup ({err}): the peak comes from sampling")
    oom_before = read_vmstat(("oom_kill",), procfs).get("oom_kill")
    # Without a job cgroup, memory the job holds in shared memory that no process maps
    # (memfd, tmpfs files, SysV segments not attached) is in no process's figures; the
    # system's Shmem counter is the one place it shows.
    shmem_before = read_shmem_bytes(procfs) if cgroup is None and LINUX else None
    # macOS has no sigtimedwait (and no waitid before Python 3.13), Windows neither.
    if forward_signals and not hasattr(signal, "sigtimedwait"):
        forward_signals = False
        warnings.append(
            "signals sent to memwatch are not forwarded to the command on this platform"
        )
    old_mask = (
        signal.pthread_sigmask(signal.SIG_BLOCK, _SignalForwarder.WAITED)
        if forward_signals
        else None
    )
    return _Setup(
        warnings,
        spawner_hwm_bytes,
        subreaper,
        was_subreaper,
        cgroup,
        oom_before,
        shmem_before,
        old_mask,
    )


def _execute(
    command: Sequence[str],
    setup: _Setup,
    reader: Backend,
    interval_s: float,
    pss: bool,
    on_sample: Callable[[Sample], None] | None,
    stdio: tuple[int | None, int | None],
    procfs: str,
) -> Observed:
    """Start the job, sample it until it ends, reap it; what it showed."""
    forwarder = sampler = counters = None
    try:
        try:
            child = _spawn(command, setup.cgroup, setup.old_mask, stdio)
        except subprocess.SubprocessError as err:
            # Joining the job cgroup failed between fork and exec (e.g. it was removed).
            if setup.cgroup is None:
                raise
            setup.cgroup.remove()
            setup.cgroup = None
            setup.warnings.append(
                f"cannot start the command in the job cgroup ({err}): sampling only"
            )
            child = _spawn(command, None, setup.old_mask, stdio)
        t0 = time.monotonic()
        tracker = reader.tracker(child.pid, reaper_pid=os.getpid() if setup.subreaper else None)
        if setup.cgroup is not None:
            try:
                counters = setup.cgroup.counters()
            except CgroupUnavailable as err:
                setup.warnings.append(f"cannot read the job cgroup's totals ({err}): sampling")
        sampler = Sampler(
            tracker,
            interval_s=interval_s,
            pss=pss,
            t0=t0,
            on_sample=on_sample,
            after_walk=lambda members: _reap(members, child.pid),
            cgroup=counters,
            backend=reader,
            system_shmem=None if setup.shmem_before is None else lambda: read_shmem_bytes(procfs),
        )
        sampler.start()
        if setup.old_mask is not None:
            forwarder = _SignalForwarder(child.pid)
            forwarder.start()
        # Wait without reaping, so the last sample still sees the job's descendants and
        # the job's pid cannot be reused while signals may still be forwarded to it.
        # Without waitid (macOS before Python 3.13, Windows) the job is reaped at once.
        ended = None if hasattr(os, "waitid") else _reap_job(child)
        if ended is None:
            os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        duration_s = time.monotonic() - t0
        received = None
        if forwarder:
            forwarder.stop()
            received = forwarder.received
            forwarder = None
        sampler.stop()
        returncode, raw_maxrss = ended or _reap_job(child)
        cgroup_peak = setup.cgroup.read_peak() if setup.cgroup else None
    finally:
        if forwarder:
            forwarder.stop()
        if sampler is not None:
            sampler.stop()
        if counters is not None:
            counters.close()
    oom_after = read_vmstat(("oom_kill",), procfs).get("oom_kill")
    stragglers = [p for p in sampler.last_procs if p.pid != child.pid and p.rss_bytes > 0]
    return Observed(
        returncode=returncode,
        duration_s=duration_s,
        raw_maxrss=raw_maxrss,
        spawner_hwm_bytes=setup.spawner_hwm_bytes,
        accumulator=sampler.accumulator,
        plateaus=tuple(sampler.plateaus.finish()),
        cgroup=cgroup_peak,
        system_oom_kills=(
            None if setup.oom_before is None or oom_after is None else oom_after - setup.oom_before
        ),
        received_signal=received,
        sampling_error=sampler.error,
        unreadable=len(sampler.unreadable),
        vanished=sampler.vanished,
        stragglers=len(stragglers),
        missed_ticks=sampler.missed_ticks,
        held_up_ticks=sampler.held_up_ticks,
        escaped_cgroup=len(sampler.escaped_cgroup),
        backend=reader.name,
        limitations=tuple(reader.limitations(pss=pss)),
        shmem_before_bytes=setup.shmem_before,
        shmem_max_bytes=sampler.shmem_max_bytes,
    )
