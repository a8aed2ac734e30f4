#!/usr/bin/env python3
"""memhog: small jobs with known memory behaviour, for trying memwatch and for its tests.

    memhog.py hold MIB SECONDS                one process holds MIB
    memhog.py children N MIB SECONDS          N children hold MIB each, at the same time
    memhog.py spike BASE_MIB SPIKE_MIB        holds BASE, spikes SPIKE_MIB for ~10 ms, exits
    memhog.py grow MIB STEP_MIB PAUSE_S       grows to MIB in steps, then exits
    memhog.py daemon MIB SECONDS              a grandchild double-forks away and holds MIB
    memhog.py cow MIB READERS SECONDS         parent holds MIB, READERS forked children read it
    memhog.py exit CODE                       exits with CODE
    memhog.py sleep SECONDS                   sleeps (for signal tests)

Memory is written, not just reserved, so it is really resident. Only the standard
library is used, so each process costs ~10 MiB of interpreter on top of what it holds.
"""

import os
import sys
import time

MIB = 1 << 20


def touch(mib: float) -> bytearray:
    return bytearray(b"\x01") * int(mib * MIB)


def wait_children(pids: list[int]) -> int:
    worst = 0
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status))
    return worst


def hold(mib: float, seconds: float) -> int:
    buf = touch(mib)
    time.sleep(seconds)
    return len(buf) and 0


def children(n: int, mib: float, seconds: float) -> int:
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(hold(mib, seconds))
        pids.append(pid)
    return wait_children(pids)


def spike(base_mib: float, spike_mib: float) -> int:
    base = touch(base_mib)
    time.sleep(0.3)
    extra = touch(spike_mib)  # written page by page, then freed at once
    del extra
    time.sleep(0.3)
    return len(base) and 0


def grow(mib: float, step_mib: float, pause_s: float) -> int:
    chunks = []
    while len(chunks) * step_mib < mib:
        chunks.append(touch(step_mib))
        time.sleep(pause_s)
    return 0


def daemon(mib: float, seconds: float) -> int:
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:  # the grandchild: its parent exits at once, so it is orphaned
            os._exit(hold(mib, seconds))
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(seconds + 0.5)  # the job goes on while the daemon holds its memory
    return 0


def cow(mib: float, readers: int, seconds: float) -> int:
    buf = touch(mib)
    pids = []
    for _ in range(readers):
        pid = os.fork()
        if pid == 0:
            total = sum(memoryview(buf)[:: 4096 * 16])  # reads share the parent's pages
            time.sleep(seconds)
            os._exit(0 if total else 1)
        pids.append(pid)
    return wait_children(pids)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    mode, args = argv[0], [float(a) for a in argv[1:]]
    if mode == "hold":
        return hold(*args)
    if mode == "children":
        return children(int(args[0]), args[1], args[2])
    if mode == "spike":
        return spike(*args)
    if mode == "grow":
        return grow(*args)
    if mode == "daemon":
        return daemon(*args)
    if mode == "cow":
        return cow(args[0], int(args[1]), args[2])
    if mode == "exit":
        return int(args[0])
    if mode == "sleep":
        time.sleep(args[0])
        return 0
    print(f"memhog: unknown mode {mode!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
