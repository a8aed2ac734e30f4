#!/usr/bin/env python3
"""What sampling costs: memwatch vs psutil vs bare /proc reads; memwatch run vs mprof.

Run by hand, as root (the job cgroup), with mprof installed (pip install '.[bench]'):
    python3 benchmarks/sampling_cost.py [--rounds 300] [--runs 3] [--sizes 100,1000,5000]
Takes about 15 minutes at the defaults.

Part 1 times one sample of the same live 100-process tree, the methods alternating round
by round (order rotated each round) so a noisy, shared machine slows them all alike:
  memwatch       TreeTracker + Sampler.sample_once() without a cgroup: one /proc listing,
                 then one pread of each process's kept-open status (rss, swap, VmHWM),
                 folded into the accumulator
  memwatch --pss the same with pss=True: smaps_rollup per process too
  psutil         Process(root).children(recursive=True) + memory_full_info() of each
                 (rss, swap, pss): the same information as memwatch --pss
  status only    os.open/read/close of /proc/PID/status for the known 100 pids: the floor
Figures are medians of microseconds per process per sample, and medians of the per-round
ratios (side by side, so they survive machine noise better than absolute times).

Part 2 (issue 10's acceptance) wraps idle trees of --sizes processes (a Python parent
whose children exec `sleep`, so a big tree stays small in memory) at --interval (0.05 s),
three ways per size, the ways alternating round by round (--runs rounds):
  memwatch           `python3 -m memwatch run --interval I --json S.json -- TREE`:
                     the job cgroup's totals at every sample, the process walk at most
                     once a second (and at most 2 % of the time)
  memwatch --no-cgroup  the same without a job cgroup: every process's status at every sample
  mprof              `mprof run --include-children --interval I -o S.dat TREE`
                     (memory_profiler: psutil children(recursive=True) + memory_info)
Over a --window s window that starts once the tree is built, each watcher's own CPU
(utime+stime of its process, all threads, children excluded) is divided by the samples it
took in that window (memwatch: its sample rate over the run, from its JSON summary; mprof:
the samples time-stamped in the window, from its .dat file) and by the tree's size: extra
CPU per process per sample. Samples kept: samples taken / samples asked.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import psutil  # noqa: E402

from memwatch.sampler import Sampler  # noqa: E402
from memwatch.tree import TreeTracker  # noqa: E402

NPROC, MIB_EACH = 100, 2
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The tree: a parent forks NPROC-1 children that each write MIB_EACH MiB and sleep HOLD s;
# it touches READY once all have, and waits for them. SIGTERM makes it kill and reap them.
TREE = r"""
import os, signal, sys, time
n, mib, hold, ready = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
kids = []
def stop(*_):
    for k in kids:
        os.kill(k, signal.SIGKILL)
    for k in kids:
        os.waitpid(k, 0)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
r, w = os.pipe()
for _ in range(n - 1):
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        buf = bytearray(b"\x01") * int(mib * (1 << 20))
        os.write(w, b".")
        time.sleep(hold)
        os._exit(0)
    kids.append(pid)
got = 0
while got < n - 1:
    got += len(os.read(r, 4096))
open(ready, "w").close()
for k in kids:
    os.waitpid(k, 0)
"""


def tree_cmd(hold: float, ready: str) -> list[str]:
    return [sys.executable, "-c", TREE, str(NPROC), str(MIB_EACH), str(hold), ready]


def wait_ready(path: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"sampling_cost.py: the tree never got ready (rc={proc.poll()})")
        time.sleep(0.02)
    return time.monotonic()


def stop(proc: subprocess.Popen) -> None:
    """Ask the tree (or memwatch) to stop; kill its whole session if it does not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- part 1: one sample, four ways --------------------------------------------------
def part1(root: int, rounds: int) -> dict[str, list[float]]:
    t0 = time.monotonic()
    mw = Sampler(TreeTracker(root), interval_s=0.1, t0=t0)
    mw_pss = Sampler(TreeTracker(root), interval_s=0.1, pss=True, t0=t0)
    mw.sample_once()  # warm-up: the first refresh classifies every pid on the machine
    mw_pss.sample_once()
    pids = sorted(p.pid for p in mw.last_procs)

    def psutil_sample() -> int:
        top = psutil.Process(root)
        n = 0
        for p in [top, *top.children(recursive=True)]:
            try:
                m = p.memory_full_info()
                _ = (m.rss, m.swap, m.pss)
                n += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return n

    def status_only() -> int:
        for pid in pids:
            fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
            os.read(fd, 65536)
            os.close(fd)
        return len(pids)

    methods = {
        "memwatch": lambda: mw.sample_once().processes,
        "memwatch --pss": lambda: mw_pss.sample_once().processes,
        "psutil": psutil_sample,
        "status only": status_only,
    }
    names = list(methods)
    per_proc: dict[str, list[float]] = {k: [] for k in names}
    for i in range(rounds):
        for name in names[i % 4 :] + names[: i % 4]:  # rotate the order each round
            start = time.perf_counter_ns()
            n = methods[name]()
            elapsed = time.perf_counter_ns() - start
            if n != NPROC:
                raise SystemExit(f"sampling_cost.py: {name} saw {n} processes, not {NPROC}")
            per_proc[name].append(elapsed / 1000 / n)
    return per_proc


# ---- part 2: wrapping idle trees of several sizes, memwatch vs mprof -------------------
# A parent whose children exec sleep (PR_SET_PDEATHSIG: none outlives it): thousands of
# them fit in little memory. It touches READY once all exist, holds HOLD s, kills them.
IDLE_TREE = r"""
import ctypes, os, signal, sys, time
n, hold, ready, sleep = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
libc = ctypes.CDLL(None, use_errno=True)
kids = []
for _ in range(n - 1):
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(1, signal.SIGKILL)
            os.execv(sleep, ["sleep", "86400"])
        finally:
            os._exit(127)
    kids.append(pid)
open(ready, "w").close()
time.sleep(hold)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
"""
SLEEP = "/bin/sleep"
WAYS = ("memwatch", "memwatch --no-cgroup", "mprof")


def cpu_s(pid: int) -> float:
    """CPU time of a process, all its live threads (children excluded), in seconds: the
    scheduler's nanosecond sum (/proc/PID/task/TID/schedstat), not utime+stime, which
    are counted in whole clock ticks and miss short wake-ups."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that just ended
    return total / 1e9


def memwatch_samples(summary_path: str, window_s: float) -> float:
    """Samples memwatch took in a window: its rate over the whole run (JSON summary), as
    no samples file is written (writing one would add its own cost to memwatch's)."""
    with open(summary_path) as f:
        summary = json.load(f)
    return summary["samples"] / summary["duration_s"] * window_s


def mprof_samples(path: str, a: float, b: float) -> int:
    """mprof's samples ("MEM <MiB> <unix time>" lines) time-stamped in [a, b]: it does not
    flush them as it goes."""
    with open(path) as f:
        stamps = [float(line.split()[2]) for line in f if line.startswith("MEM ")]
    return sum(1 for t in stamps if a <= t <= b)


def wrap_idle_tree(way: str, n: int, interval: float, window_s: float) -> dict[str, float]:
    """One watcher wrapping one idle tree: its CPU and samples over the window."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        tree = [sys.executable, "-c", IDLE_TREE, str(n), str(window_s + 3), ready, SLEEP]
        if way == "mprof":
            out = os.path.join(tmp, "mprof.dat")
            cmd = ["mprof", "run", "--include-children", "--interval", str(interval)]
            cmd += ["-o", out, "--nopython", *tree]
        else:
            out = os.path.join(tmp, "summary.json")
            cmd = [sys.executable, "-m", "memwatch", "run", "-q", "--interval", str(interval)]
            cmd += ["--json", out, *(["--no-cgroup"] if "no-cgroup" in way else [])]
            cmd += ["--", *tree]
        env = dict(os.environ, PYTHONPATH=REPO)
        watcher = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
        try:
            t_ready = wait_ready(ready, watcher, timeout=300)
            time.sleep(max(0.0, t_ready + 1.0 - time.monotonic()))
            a, ta, wa = cpu_s(watcher.pid), time.monotonic(), time.time()
            time.sleep(max(0.0, t_ready + 1.0 + window_s - time.monotonic()))
            b, tb, wb = cpu_s(watcher.pid), time.monotonic(), time.time()
            rc = watcher.wait(timeout=300)
            taken = mprof_samples(out, wa, wb) if way == "mprof" else memwatch_samples(out, tb - ta)
        finally:
            stop(watcher)
        asked = (tb - ta) / interval
        return dict(
            us_per_proc=1e6 * (b - a) / max(1, taken) / n,
            us_per_sample=1e6 * (b - a) / max(1, taken),
            kept_pct=100 * taken / asked,
            rc=rc,
        )


def part2(sizes: list[int], interval: float, window_s: float, runs: int) -> dict:
    """{(way, n): [figures of each run]}: the ways alternating, order rotated each round."""
    found: dict[tuple[str, int], list[dict[str, float]]] = {}
    for n in sizes:
        for r in range(runs):
            for way in WAYS[r % 3 :] + WAYS[: r % 3]:
                got = wrap_idle_tree(way, n, interval, window_s)
                found.setdefault((way, n), []).append(got)
                print(
                    f"  {n:5d} processes  {way:22s} run {r + 1}: "
                    f"{got['us_per_proc']:8.2f} us/proc/sample  {got['kept_pct']:5.1f}% kept"
                    f"  (exit {got['rc']:.0f})",
                    flush=True,
                )
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=300, help="samples per method in part 1")
    ap.add_argument("--runs", type=int, default=3, help="runs of each watcher per size, part 2")
    ap.add_argument("--window", type=float, default=10.0, help="seconds measured per run in part 2")
    ap.add_argument("--interval", type=float, default=0.05, help="sampling interval in part 2")
    ap.add_argument("--sizes", default="100,1000,5000", help="tree sizes in part 2")
    opts = ap.parse_args()
    sizes = [int(x) for x in opts.sizes.split(",")]
    nproc_machine = sum(1 for d in os.listdir("/proc") if d.isdigit())
    print(
        f"{nproc_machine} processes on the machine; {os.cpu_count()} CPUs; "
        f"psutil {psutil.__version__}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        tree = subprocess.Popen(tree_cmd(3600, ready), start_new_session=True)
        try:
            wait_ready(ready, tree)
            per_proc = part1(tree.pid, opts.rounds)
        finally:
            stop(tree)

    med = {k: statistics.median(v) for k, v in per_proc.items()}

    def ratio(a: str, b: str) -> float:  # median of per-round ratios: side by side
        return statistics.median(x / y for x, y in zip(per_proc[a], per_proc[b], strict=True))

    print(f"\nPart 1: one sample of a {NPROC}-process tree, {opts.rounds} rounds, alternating")
    hdr = f"{'method':16} {'us/proc median':>15} {'p10':>7} {'p90':>7} {'ms/sample':>10} x memwatch"
    print(hdr + "\n" + "-" * len(hdr))
    for name, v in per_proc.items():
        q = statistics.quantiles(v, n=10)
        ms = med[name] * NPROC / 1000
        x = ratio(name, "memwatch")
        print(f"{name:16} {med[name]:15.1f} {q[0]:7.1f} {q[-1]:7.1f} {ms:10.2f} {x:10.2f}")

    print(
        f"\nPart 2: wrapping idle trees at {opts.interval:g} s, {opts.window:g} s windows, "
        f"{opts.runs} runs per watcher and size"
    )
    found = part2(sizes, opts.interval, opts.window, opts.runs)

    def fig(way: str, n: int, key: str) -> float:
        return statistics.median(r[key] for r in found[(way, n)])

    print()
    hdr = f"{'processes':>9} {'watcher':22} {'us/proc/sample':>15} {'us/sample':>10} "
    hdr += f"{'kept %':>7} {'mprof / it':>11}"
    print(hdr + "\n" + "-" * len(hdr))
    for n in sizes:
        for way in WAYS:
            per = fig(way, n, "us_per_proc")
            x = fig("mprof", n, "us_per_proc") / per
            print(
                f"{n:9d} {way:22} {per:15.2f} {fig(way, n, 'us_per_sample'):10.1f} "
                f"{fig(way, n, 'kept_pct'):7.1f} {x:10.1f}x"
            )
    print()
    small, big = sizes[0], sizes[-1]
    mp = fig("mprof", small, "us_per_proc")
    for way, want in (("memwatch", 20), ("memwatch --no-cgroup", 4)):
        x = mp / fig(way, small, "us_per_proc")
        print(
            f"target: {way} at {small} processes >= {want}x below mprof per process per "
            f"sample: {x:.1f}x: {'met' if x >= want else 'MISSED'}"
        )
    growth = fig("memwatch", big, "us_per_sample") / fig("memwatch", small, "us_per_sample")
    print(
        f"memwatch (cgroup) CPU per sample from {small} to {big} processes: x{growth:.1f} "
        f"for x{big / small:g} processes"
    )
    for way in WAYS[:2]:
        low = min(fig(way, n, "kept_pct") for n in sizes)
        print(
            f"target: {way} keeps >= 90% of the asked samples at every size: lowest "
            f"{low:.1f}%: {'met' if low >= 90 else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
