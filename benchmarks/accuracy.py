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
MEMSW_PEAK = "memory.memsw.max_usage_in_bytes"  # RAM+swap high-water mark, exact

# name, memhog arguments, (memory.limit_in_bytes, memory.memsw.limit_in_bytes) or None,
# memwatch's --interval
WORKLOADS = [
    ("children", ["children", "4", "400", "2"], None, "0.1"),
    ("spike", ["spike", "100", "400"], None, "0.1"),
    # The same spike with one sample a second: the ~0.2 s spike falls between samples.
    ("spike-1s", ["spike", "100", "400"], None, "1"),
    ("swap", ["grow", "600", "20", "0.05"], (200 * MIB, -1), "0.1"),  # RAM 200M, swap free
    ("daemon", ["daemon", "400", "2"], None, "0.1"),
    ("cow", ["cow", "400", "4", "2"], None, "0.1"),
    ("oom", ["grow", "1000", "20", "0.02"], (250 * MIB, 250 * MIB), "0.1"),  # 250M: OOM
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


def put(path: str, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


class Cgroup:
    """A v1 memory cgroup made by this script; remove() undoes it."""

    def __init__(self, parent: str, name: str, limits: tuple[int, int] | None = None):
        self.parent, self.path = parent, os.path.join(parent, name)
        self.procs = os.path.join(self.path, "cgroup.procs")
        os.mkdir(self.path)
        if limits:  # RAM first: memsw.limit may never be below limit_in_bytes
            put(os.path.join(self.path, "memory.limit_in_bytes"), limits[0])
            put(os.path.join(self.path, "memory.memsw.limit_in_bytes"), limits[1])

    def read(self, name: str) -> int:
        with open(os.path.join(self.path, name)) as f:
            return int(f.read())

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
                put(os.path.join(self.parent, "cgroup.procs"), pid)
            except OSError:
                pass  # exited meanwhile
        for _ in range(100):  # EBUSY for a moment while exiting tasks are uncharged
            try:
                return os.rmdir(self.path)
            except OSError as err:
                if err.errno == errno.ENOENT:
                    return None
                if err.errno != errno.EBUSY:
                    raise
                time.sleep(0.05)
        print(f"warning: could not remove {self.path}", file=sys.stderr)


def spawn(cmd: list[str], procs_path: str, **kw) -> subprocess.Popen:
    """Start cmd in a cgroup: it joins between fork and exec, so all it allocates is charged."""
    fd = os.open(procs_path, os.O_WRONLY)
    try:
        join = lambda: os.write(fd, str(os.getpid()).encode())  # noqa: E731
        return subprocess.Popen(cmd, preexec_fn=join, **kw)
    finally:
        os.close(fd)


# ---- one measurement --------------------------------------------------------------------
def measure(own: str, n: int, args: list[str], limits, flags: list[str] | None) -> dict:
    """One run of one workload in one mode (flags None: the bare job); truth, figure, source."""
    job = [sys.executable, MEMHOG, *args]
    made: list[Cgroup] = []
    try:
        outer = Cgroup(own, f"mwbench-{os.getpid()}-{n}", limits)
        made.append(outer)
        inner = None
        if flags is None or "--no-cgroup" in flags:  # INNER holds the job alone
            inner = Cgroup(outer.path, "job")
            made.append(inner)
        if flags is None:  # the bare job, as GNU time runs it: wait4's rusage
            p = spawn(job, inner.procs, stdout=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = rc = os.waitstatus_to_exitcode(status)
            truth = inner.read(MEMSW_PEAK)
            return dict(truth=truth, got=ru.ru_maxrss * 1024, src="ru_maxrss", rc=rc)
        if inner is not None:  # memwatch stays in OUTER; the job moves itself to INNER first
            job = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', inner.procs, *job]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "summary.json")
            cmd = [sys.executable, "-m", "memwatch", "-q", *flags, "--json", out, "--", *job]
            env = dict(os.environ, PYTHONPATH=REPO)
            p = spawn(cmd, outer.procs, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            err = p.communicate(timeout=600)[1].decode(errors="replace").strip()
            if not os.path.exists(out):
                return dict(truth=None, got=None, src="FAILED", rc=p.returncode, stderr=err)
            with open(out) as f:
                s = json.load(f)
        # Default mode: memwatch's nested job cgroup (gone by now), as memwatch read it.
        truth = inner.read(MEMSW_PEAK) if inner else (s["cgroup"] or {}).get("total_bytes")
        r = dict(truth=truth, got=s["peak"]["total_bytes"], src=s["peak"]["source"], stderr=err)
        return dict(r, rc=p.returncode, oom=s["oom_killed"], warnings=s["warnings"])
    finally:
        for cg in reversed(made):  # innermost first
            cg.remove()


# ---- report -----------------------------------------------------------------------------
def mib(b: int | None) -> str:
    return "-" if b is None else f"{b / MIB:.0f}"


def cell(rs: list[dict]) -> dict:
    """Medians of one (workload, mode) cell; ratios are per run (truth of that same run)."""
    ok = [r for r in rs if r["truth"] and r["got"] is not None]
    rat = [r["got"] / r["truth"] for r in ok]
    med = statistics.median
    c = dict(rat=rat, src=",".join(sorted({r["src"] for r in rs})), ratio=med(rat) if rat else None)
    c["truth"], c["got"] = (med(r[k] for r in ok) if ok else None for k in ("truth", "got"))
    c["x"] = "failed" if c["ratio"] is None else f"{c['ratio']:.2f}x"
    c["rc"] = ",".join(sorted({f"{r['rc']}{'/oom' if r.get('oom') else ''}" for r in rs}))
    return c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", help="comma-separated workload names")
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("accuracy.py: needs root (it creates memory cgroups)")
    own = own_memory_cgroup()
    print(f"memory cgroup: {own}; interval 0.1 s (default) unless named; {opts.reps} reps")
    workloads = [w for w in WORKLOADS if not opts.only or w[0] in opts.only.split(",")]
    results: dict[tuple[str, str], list[dict]] = {}
    n = 0
    for rep in range(opts.reps):  # every mode of every workload once per rep: side by side
        for name, args, limits, interval in workloads:
            for label, flags in MODES:
                n += 1
                with_interval = None if flags is None else [*flags, "--interval", interval]
                r = measure(own, n, args, limits, with_interval)
                results.setdefault((name, label), []).append(r)
                print(
                    f"  rep {rep + 1} {name:8} {label:18} truth {mib(r['truth']):>5} MiB "
                    f"reported {mib(r['got']):>5} MiB [{r['src']}] rc={r['rc']}",
                    flush=True,
                )

    cells = {key: cell(rs) for key, rs in results.items()}
    hdr = (
        f"{'workload':9} {'mode':18} {'truth':>6} {'bare':>6} {'reported':>8} {'ratio':>6} "
        f"{'ratio range':>12}  {'source':14} exit"
    )
    print(f"\n{hdr}\n{'-' * (len(hdr) + 4)}")
    for name, *_ in workloads:
        bare = cells[(name, MODES[0][0])]["truth"]
        for label, _ in MODES:
            c = cells[(name, label)]
            rng = f"{min(c['rat']):.2f}-{max(c['rat']):.2f}" if c["rat"] else "-"
            print(
                f"{name:9} {label:18} {mib(c['truth']):>6} {mib(bare):>6} {mib(c['got']):>8} "
                f"{c['x']:>6} {rng:>12}  {c['src']:14} {c['rc']}"
            )
        print()
    print(
        "truth: kernel RAM+swap peak of the job alone in that run; bare: the same for the bare "
        "job (no memwatch); reported: ru_maxrss or memwatch's peak.total_bytes (median MiB); "
        "ratio: median of per-run reported/truth; exit: exit status (/oom: JSON oom_killed)"
    )
    print("\nmemwatch stderr and warnings (numbers replaced by #, once per cell):")
    for (name, label), rs in results.items():
        notes = {re.sub(r"\d+(\.\d+)?", "#", w) for r in rs for w in r.get("warnings", [])}
        notes |= {f"STDERR: {r['stderr'][-300:]}" for r in rs if r.get("stderr")}
        for w in sorted(notes):
            print(f"  [{name} / {label}] {w}")

    # One-paragraph summary, written from the figures above.
    def line(label: str) -> str:
        return ", ".join(f"{w} {cells[(w, label)]['x']}" for w, *_ in workloads)

    off = [
        f"{w} {lab} (median {c['ratio']:.2f}x, runs {min(c['rat']):.2f}-{max(c['rat']):.2f}x)"
        for w, *_ in workloads
        for lab, _ in MODES[1:]
        if (c := cells[(w, lab)])["rat"] and not all(0.9 <= x <= 1.1 for x in c["rat"])
    ]
    # Where memwatch's share of a limit cannot change the job's peak (memsw unlimited), its job
    # cgroup's reading should match the bare job's peak, which this script read itself.
    agree = [
        abs(r["truth"] / cells[(w, MODES[0][0])]["truth"] - 1)
        for w, _, lim, _ in workloads
        if not lim or lim[1] == -1
        for r in results[(w, "memwatch")]
        if r["truth"]
    ]
    print(
        f"\nSummary: median reported/truth over {opts.reps} runs, truth being the kernel's "
        "RAM+swap peak (memsw.max_usage_in_bytes) of a cgroup holding only the job. GNU time "
        f"(ru_maxrss): {line(MODES[0][0])}. memwatch default: {line('memwatch')} (its truth is its "
        "own job cgroup's reading, so 1.00x by construction; that reading is within "
        f"{100 * max(agree, default=0):.1f}% of the bare job's peak read independently, oom "
        "aside, where memwatch uses part of the limit). memwatch --no-cgroup: "
        f"{line('--no-cgroup')}. memwatch --no-cgroup --pss: {line('--no-cgroup --pss')}. "
        f"memwatch cells with a median or any run outside +/-10% of truth: "
        f"{'; '.join(off) if off else 'none'}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
