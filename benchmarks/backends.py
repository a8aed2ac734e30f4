#!/usr/bin/env python3
"""The psutil backend against the /proc backend: the same peaks? what one sample costs.

Run by hand, as root on a cgroup v1 memory hierarchy for the truth column (elsewhere it
is left out):  python3 benchmarks/backends.py [--reps 3] [--rounds 200]

Part 1, peaks. Each workload runs under `memwatch --no-cgroup --backend proc` and under
`--backend psutil`, the two interleaved, --reps times. With --no-cgroup both figures are
sampled (no job cgroup supplies them). The job alone is put in a cgroup of its own (it
joins it before exec; memwatch stays outside), whose RAM+swap high-water mark
(memory.memsw.max_usage_in_bytes) is the truth of that run.
  fork-tree  memhog children 4 300 1.5   four children hold 300 MiB each for 1.5 s
  ramp       memhog grow 600 20 0.1      grows to 600 MiB in 20 MiB steps, 0.1 s apart
Printed: medians in MiB of the proc peak, the psutil peak and the truth, and psutil/proc
as the median of the per-rep ratios (each rep runs the two back to back).

Part 2, cost. One Sampler.sample_once() of the same live 100-process tree by each
backend, alternating round by round (order swapped each round) so a noisy machine slows
both alike; each tracker is given this script as the subreaper, as `memwatch run` does:
  proc    one /proc listing, then stat + status per process
  psutil  Process(root).children(recursive=True) and the reaper's children (each a walk
          of every process on the machine), then Process(pid) + memory_full_info() per
          process (swap on Linux is only there: smaps_rollup)
Printed: median ms per sample and us per process, and the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import psutil  # noqa: E402
from accuracy import MEMHOG, MEMSW_PEAK, Cgroup, own_memory_cgroup  # noqa: E402
from sampling_cost import NPROC, stop, tree_cmd, wait_ready  # noqa: E402

from memwatch.backend import Backend  # noqa: E402
from memwatch.proc_backend import ProcBackend  # noqa: E402
from memwatch.psutil_backend import PsutilBackend  # noqa: E402
from memwatch.sampler import Sampler  # noqa: E402

MIB = 1 << 20
BACKENDS = ("proc", "psutil")
WORKLOADS = {
    "fork-tree": ["children", "4", "300", "1.5"],
    "ramp": ["grow", "600", "20", "0.1"],
}


# ---- part 1: peaks ---------------------------------------------------------------------
def truth_cgroup(n: int) -> Cgroup | None:
    """A fresh v1 memory cgroup for the job alone, or None where none can be made."""
    if os.geteuid() != 0:
        return None
    try:
        return Cgroup(own_memory_cgroup(), f"mwbackends-{os.getpid()}-{n}")
    except (OSError, SystemExit):
        return None


def run_once(n: int, backend: str, args: list[str]) -> dict:
    job = [sys.executable, MEMHOG, *args]
    cg = truth_cgroup(n)
    if cg is not None:  # the job joins its cgroup, then execs: memwatch stays outside
        job = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', cg.procs, *job]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "summary.json")
            cmd = [sys.executable, "-m", "memwatch", "-q", "--no-cgroup", "--backend", backend]
            cmd += ["--json", out, "--", *job]
            env = dict(os.environ, PYTHONPATH=REPO)
            p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, timeout=600)
            with open(out) as f:
                s = json.load(f)
        truth = cg.read(MEMSW_PEAK) if cg else None
    finally:
        if cg is not None:
            cg.remove()
    peak = s["peak"]
    return dict(peak=peak["total_bytes"], source=peak["source"], truth=truth, rc=p.returncode)


def part1(reps: int) -> None:
    print(f"\nPart 1: peaks with --no-cgroup, {reps} reps, backends interleaved")
    results: dict[tuple[str, str], list[dict]] = {}
    n = 0
    for rep in range(reps):
        for name, args in WORKLOADS.items():
            order = BACKENDS if rep % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                n += 1
                r = run_once(n, backend, args)
                results.setdefault((name, backend), []).append(r)
                truth = "-" if r["truth"] is None else f"{r['truth'] / MIB:.0f}"
                print(
                    f"  rep {rep + 1} {name:9} {backend:6} peak {r['peak'] / MIB:6.0f} MiB "
                    f"[{r['source']}] truth {truth:>5} MiB rc={r['rc']}",
                    flush=True,
                )
    med = statistics.median
    hdr = (
        f"{'workload':10} {'proc MiB':>9} {'psutil MiB':>11} {'truth MiB':>10} "
        f"{'psutil/proc':>12} {'range':>12}  sources (proc / psutil)"
    )
    print(f"\n{hdr}\n{'-' * len(hdr)}")
    worst = 0.0
    for name in WORKLOADS:
        proc, ps = results[(name, "proc")], results[(name, "psutil")]
        ratios = [b["peak"] / a["peak"] for a, b in zip(proc, ps, strict=True)]
        worst = max(worst, *(abs(x - 1) for x in ratios))
        truths = [r["truth"] for r in proc + ps if r["truth"] is not None]
        truth = f"{med(truths) / MIB:.0f}" if truths else "-"
        srcs = (
            f"{','.join(sorted({r['source'] for r in proc}))} / "
            f"{','.join(sorted({r['source'] for r in ps}))}"
        )
        print(
            f"{name:10} {med(r['peak'] for r in proc) / MIB:9.0f} "
            f"{med(r['peak'] for r in ps) / MIB:11.0f} {truth:>10} {med(ratios):12.3f} "
            f"{min(ratios):.3f}-{max(ratios):.3f}  {srcs}"
        )
    verdict = "within" if worst <= 0.05 else "NOT within"
    print(f"largest psutil/proc deviation of any rep: {100 * worst:.1f}% ({verdict} 5%)")


# ---- part 2: cost of one sample ----------------------------------------------------------
def part2(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready")
        tree = subprocess.Popen(tree_cmd(3600, ready), start_new_session=True)
        try:
            wait_ready(ready, tree)
            backends: dict[str, Backend] = {"proc": ProcBackend(), "psutil": PsutilBackend()}
            t0 = time.monotonic()
            samplers = {
                name: Sampler(
                    b.tracker(tree.pid, reaper_pid=os.getpid()), interval_s=0.1, t0=t0, backend=b
                )
                for name, b in backends.items()
            }
            for s in samplers.values():
                s.sample_once()  # warm-up: the proc tracker classifies every pid once
            us: dict[str, list[float]] = {name: [] for name in BACKENDS}
            for i in range(rounds):
                for name in BACKENDS if i % 2 == 0 else BACKENDS[::-1]:
                    start = time.perf_counter_ns()
                    n = samplers[name].sample_once().processes
                    us[name].append((time.perf_counter_ns() - start) / 1000)
                    if n != NPROC:
                        raise SystemExit(f"backends.py: {name} saw {n} processes, not {NPROC}")
            machine = len(psutil.pids())
        finally:
            stop(tree)
    print(
        f"\nPart 2: one sample of a {NPROC}-process tree, {rounds} rounds alternating; "
        f"{machine} processes on the machine, {os.cpu_count()} CPUs, psutil {psutil.__version__}"
    )
    hdr = f"{'backend':8} {'ms/sample':>10} {'p10':>7} {'p90':>7} {'us/process':>11}"
    print(f"{hdr}\n{'-' * len(hdr)}")
    for name in BACKENDS:
        q = statistics.quantiles(us[name], n=10)
        m = statistics.median(us[name])
        print(f"{name:8} {m / 1000:10.2f} {q[0] / 1000:7.2f} {q[-1] / 1000:7.2f} {m / NPROC:11.1f}")
    ratio = statistics.median(b / a for a, b in zip(us["proc"], us["psutil"], strict=True))
    print(f"psutil/proc per sample: {ratio:.1f}x (median of per-round ratios)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="runs of each workload per backend")
    ap.add_argument("--rounds", type=int, default=200, help="samples per backend in part 2")
    opts = ap.parse_args()
    probe = truth_cgroup(0)
    if probe is None:
        print("no cgroup v1 memory controller as root here: the truth column is left out")
    else:
        probe.remove()
    part1(opts.reps)
    part2(opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
