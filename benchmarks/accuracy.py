#!/usr/bin/env python3
"""How close memwatch's peak is to the kernel's exact peak, on the hard cases of DESIGN.md.

Run by hand, as root, on a machine with a cgroup v1 memory hierarchy with memsw accounting
and active swap:  python3 benchmarks/accuracy.py [--reps 3]

What "truth" is, exactly: memory.memsw.max_usage_in_bytes (the kernel's RAM+swap
high-water mark, one exact counter) of a cgroup that contains *only the job*, never
memwatch itself (its own ~20 MiB would inflate the figure). Every run gets a fresh OUTER
cgroup, made inside this script's own memory cgroup (from /proc/self/cgroup) and carrying
the workload's limits; memwatch (or, for GNU time, the bare job) is put in OUTER, so
memwatch's own memory counts against the limit exactly as it would for a real user. Then:
  - memwatch (default): memwatch makes its nested job cgroup OUTER/memwatch-PID and reads
    its memsw.max_usage_in_bytes; truth = that figure, JSON `cgroup.total_bytes`. It is
    read by memwatch, not by us (the cgroup is gone when memwatch exits), so the column
    "bare truth" (same workload, job alone, no memwatch) is shown as an independent check.
  - memwatch --no-cgroup [--pss]: memwatch runs `sh -c 'echo $$ > INNER/cgroup.procs &&
    exec memhog ...'`, so the job alone is in INNER (a child of OUTER); truth = INNER's
    memsw.max_usage_in_bytes, read by this script after memwatch exits.
  - GNU time: the bare job in INNER (no memwatch), ru_maxrss from os.wait4 (what GNU
    time prints: the largest single process's resident peak); truth = INNER's peak.
Truth includes page cache the job charges (python's files, usually already cached and
charged elsewhere, so ~0) and kernel memory charged to the cgroup: that is what a memory
limit enforces, hence what a user must provision. Each ratio is reported/truth of the same
run; medians over --reps, modes interleaved so machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMHOG = os.path.join(REPO, "examples", "memhog.py")
V1_MOUNT = "/sys/fs/cgroup/memory"

# name, memhog arguments, (memory.limit_in_bytes, memory.memsw.limit_in_bytes) or None
WORKLOADS = [
    ("children", ["children", "4", "400", "2"], None),
    ("spike", ["spike", "100", "400"], None),
    ("swap", ["grow", "600", "20", "0.05"], (200 * MIB, -1)),  # RAM 200M, swap unlimited
    ("daemon", ["daemon", "400", "2"], None),
    ("cow", ["cow", "400", "4", "2"], None),
    ("oom", ["grow", "1000", "20", "0.02"], (250 * MIB, 250 * MIB)),  # RAM+swap 250M: OOM
]
MODES = [  # label, memwatch flags (None = bare job, GNU time's view)
    ("GNU time (wait4)", None),
    ("memwatch", []),
    ("--no-cgroup", ["--no-cgroup"]),
    ("--no-cgroup --pss", ["--no-cgroup", "--pss"]),
]


# ---- cgroup helpers (v1 memory controller) ---------------------------------------------
def own_memory_cgroup() -> str:
    """This process's v1 memory cgroup directory, from /proc/self/cgroup."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "memory" in controllers.split(","):
                return os.path.join(V1_MOUNT, path.lstrip("/"))
    sys.exit("accuracy.py: no cgroup v1 memory controller in /proc/self/cgroup")


class Cgroup:
    def __init__(self, parent: str, name: str, limits: tuple[int, int] | None = None):
        self.parent, self.path = parent, os.path.join(parent, name)
        os.mkdir(self.path)
        if limits:  # RAM first: memsw.limit may never be below limit_in_bytes
            self.write("memory.limit_in_bytes", limits[0])
            self.write("memory.memsw.limit_in_bytes", limits[1])

    @property
    def procs(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def write(self, name: str, value: object) -> None:
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def read(self, name: str) -> int:
        with open(os.path.join(self.path, name)) as f:
            return int(f.read().split()[0])

    def pids(self) -> list[int]:
        with open(self.procs) as f:
            return [int(p) for p in f.read().split()]

    def remove(self, drain_s: float = 10.0) -> None:
        """Let daemonized leftovers finish (bounded), move any still there to the parent, rmdir."""
        deadline = time.monotonic() + drain_s
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():
            try:
                with open(os.path.join(self.parent, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass  # exited meanwhile
        for _ in range(100):  # EBUSY for a moment while exiting tasks are uncharged
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        print(f"warning: could not remove {self.path}", file=sys.stderr)


def joiner(procs_path: str):
    """preexec_fn: the child joins a cgroup before exec, so all it allocates is charged there."""
    fd = os.open(procs_path, os.O_WRONLY)
    return fd, lambda: os.write(fd, str(os.getpid()).encode())


# ---- one measurement --------------------------------------------------------------------
def measure(own: str, n: int, args: list[str], limits, flags: list[str] | None) -> dict:
    """One run of one workload in one mode; returns truth, reported figure, source, notes."""
    job = [sys.executable, MEMHOG, *args]
    made: list[Cgroup] = []
    try:
        outer = Cgroup(own, f"mwbench-{os.getpid()}-{n}", limits)
        made.append(outer)
        if flags is None:  # the bare job, as GNU time would run it
            inner = Cgroup(outer.path, "job")
            made.append(inner)
            fd, pre = joiner(inner.procs)
            try:
                p = subprocess.Popen(job, preexec_fn=pre, stdout=subprocess.DEVNULL)
            finally:
                os.close(fd)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            truth = inner.read("memory.memsw.max_usage_in_bytes")
            return dict(truth=truth, got=ru.ru_maxrss * 1024, src="ru_maxrss", rc=p.returncode)
        inner = None
        if "--no-cgroup" in flags:  # the job alone in INNER; memwatch stays in OUTER
            inner = Cgroup(outer.path, "job")
            made.append(inner)
            job = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', inner.procs, *job]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "summary.json")
            cmd = [sys.executable, "-m", "memwatch", "-q", *flags, "--json", out, "--", *job]
            env = dict(os.environ, PYTHONPATH=REPO)
            fd, pre = joiner(outer.procs)
            try:
                p = subprocess.run(cmd, preexec_fn=pre, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, timeout=600)
            finally:
                os.close(fd)
            if not os.path.exists(out):
                return dict(truth=None, got=None, src="FAILED", rc=p.returncode,
                            note=f"no JSON; stderr: {p.stderr.strip()[-300:]}")
            with open(out) as f:
                s = json.load(f)
        if inner is not None:
            truth = inner.read("memory.memsw.max_usage_in_bytes")
        else:
            truth = (s.get("cgroup") or {}).get("total_bytes")
        return dict(truth=truth, got=s["peak"]["total_bytes"], src=s["peak"]["source"],
                    rc=p.returncode, oom=s["oom_killed"], ru=s["ru_maxrss_bytes"],
                    warnings=s["warnings"], stderr=p.stderr.strip())
    finally:
        for cg in reversed(made):  # innermost first
            cg.remove()


# ---- report -----------------------------------------------------------------------------
def mib(b) -> str:
    return "-" if b is None else f"{b / MIB:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated workload names")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("accuracy.py: needs root (it creates memory cgroups)")
    own = own_memory_cgroup()
    print(f"memory cgroup: {own}; interval 0.1 s (default); {opts.reps} reps, modes interleaved")
    workloads = [w for w in WORKLOADS if not opts.only or w[0] in opts.only.split(",")]
    results: dict[tuple[str, str], list[dict]] = {}
    n = 0
    for rep in range(opts.reps):
        for name, args, limits in workloads:
            for label, flags in MODES:
                n += 1
                r = measure(own, n, args, limits, flags)
                results.setdefault((name, label), []).append(r)
                print(f"  rep {rep + 1} {name:8} {label:18} truth {mib(r['truth']):>5} MiB "
                      f"reported {mib(r['got']):>5} MiB  [{r['src']}] rc={r['rc']}", flush=True)

    print()
    hdr = (f"{'workload':9} {'mode':18} {'truth':>6} {'bare':>6} {'reported':>8} "
           f"{'ratio':>6} {'ratio range':>12}  {'source':14} {'exit':8}")
    print(hdr + "\n" + "-" * len(hdr))
    ratios: dict[tuple[str, str], float | None] = {}
    problems: list[str] = []
    for name, args, _ in workloads:
        bare = statistics.median(r["truth"] for r in results[(name, MODES[0][0])])
        for label, _ in MODES:
            rs = results[(name, label)]
            ok = [r for r in rs if r["truth"] and r["got"] is not None]
            rat = [r["got"] / r["truth"] for r in ok]
            med = statistics.median(rat) if rat else None
            ratios[(name, label)] = med
            truth = statistics.median(r["truth"] for r in ok) if ok else None
            got = statistics.median(r["got"] for r in ok) if ok else None
            rng = f"{min(rat):.2f}-{max(rat):.2f}" if rat else "-"
            srcs = ",".join(sorted({r["src"] for r in rs}))
            rcs = ",".join(sorted({str(r["rc"]) + ("/oom" if r.get("oom") else "") for r in rs}))
            print(f"{name:9} {label:18} {mib(truth):>6} {mib(bare):>6} {mib(got):>8} "
                  f"{'-' if med is None else f'{med:.2f}':>6} {rng:>12}  {srcs:14} {rcs:8}")
            for r in rs:
                if r.get("note"):
                    problems.append(f"{name} / {label}: rc={r['rc']} {r['note']}")
                elif r.get("stderr"):
                    problems.append(f"{name} / {label}: stderr: {r['stderr'][-200:]}")
        print()
    print("columns: truth = kernel memsw peak of the job alone in that run (median MiB); bare = "
          "truth of the bare job without memwatch; reported = GNU time's ru_maxrss or memwatch "
          "peak.total_bytes; ratio = median of reported/truth per run; exit = memwatch's exit "
          "status (/oom: JSON oom_killed)")
    if problems:
        print("\nproblems seen:")
        for p in dict.fromkeys(problems):
            print("  " + p)
    print("\nmemwatch warnings (numbers replaced by #, each shown once per cell):")
    for (name, label), rs in results.items():
        for w in sorted({re.sub(r"\d+(\.\d+)?", "#", w) for r in rs for w in r.get("warnings", [])}):
            print(f"  [{name} / {label}] {w}")

    # One-paragraph summary, written from the figures above.
    def line(label: str) -> str:
        return ", ".join(f"{w} {ratios[(w, label)]:.2f}x" if ratios[(w, label)] is not None
                         else f"{w} failed" for w, _, _ in workloads)
    off = [f"{w} ({lab}: {ratios[(w, lab)]:.2f}x)" for w, _, _ in workloads for lab, _ in MODES[1:]
           if ratios[(w, lab)] is not None and not 0.9 <= ratios[(w, lab)] <= 1.1]
    print("\nSummary: median reported/truth over " f"{opts.reps} runs, truth being the kernel's "
          "RAM+swap peak of a cgroup holding only the job. GNU time (ru_maxrss): "
          f"{line(MODES[0][0])}. memwatch default (own job cgroup): {line('memwatch')}. "
          f"memwatch --no-cgroup: {line('--no-cgroup')}. memwatch --no-cgroup --pss: "
          f"{line('--no-cgroup --pss')}. Outside +/-10% of truth for memwatch: "
          f"{'; '.join(off) if off else 'none'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
