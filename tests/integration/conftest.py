"""Fixtures for integration tests: real processes, real cgroups and swap where the machine allows.

A test that needs root, a writable memory cgroup or swap skips on a laptop, but fails
under CI=true: CI must provide them (see .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memwatch.cgroup import find_memory_cgroup
from memwatch.errors import CgroupUnavailable
from memwatch.history import History

REPO = Path(__file__).resolve().parents[2]
MEMHOG = str(REPO / "examples" / "memhog.py")
MIB = 1 << 20


def need(condition: bool, reason: str) -> None:
    """Skip on a user's machine; fail in CI, which must provide what the test needs."""
    if not condition:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must provide this: {reason}")
        pytest.skip(reason)


def swap_total_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("SwapTotal:"):
            return int(line.split()[1]) * 1024
    return 0


# The core cases run against both sampling backends: psutil is the portable one (macOS,
# Windows) and is selectable on Linux so that CI exercises it.
BACKENDS = ["proc", "psutil"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each sampling backend in turn: the test passes ``--backend`` (or ``backend=``) on."""
    return str(request.param)


@dataclass
class Cgroup:
    """A memory cgroup made by a test (v1 files; these tests need the v1 controller)."""

    path: Path

    def read(self, name: str) -> int:
        return int((self.path / name).read_text())

    @property
    def truth_bytes(self) -> int:
        """The kernel's peak of RAM + swap for everything that ran in this cgroup."""
        return self.read("memory.memsw.max_usage_in_bytes")

    @property
    def procs(self) -> str:
        return str(self.path / "cgroup.procs")


def _destroy(path: Path) -> None:
    # Children first; kill whatever is left so rmdir cannot fail on a live task.
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        _destroy(child)
    for _ in range(100):
        pids = [int(p) for p in (path / "cgroup.procs").read_text().split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"could not remove test cgroup {path}")


@pytest.fixture
def make_cgroup() -> Iterator[Any]:
    """Factory: make_cgroup(limit_bytes=None, memsw_limit_bytes=None, parent=None) -> Cgroup."""
    try:
        version, own = find_memory_cgroup()
    except CgroupUnavailable as err:
        version, own = 0, str(err)
    need(
        os.geteuid() == 0 and version == 1, f"needs root and a cgroup v1 memory controller ({own})"
    )
    made: list[Path] = []

    def make(
        limit_bytes: int | None = None,
        memsw_limit_bytes: int | None = None,
        parent: Cgroup | None = None,
    ) -> Cgroup:
        base = parent.path if parent else Path(own)
        path = base / f"memwatch-test-{os.getpid()}-{len(made)}"
        path.mkdir()
        made.append(path)
        if limit_bytes is not None:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        if memsw_limit_bytes is not None:
            (path / "memory.memsw.limit_in_bytes").write_text(str(memsw_limit_bytes))
        return Cgroup(path)

    yield make
    for path in reversed(made):
        if path.exists():
            _destroy(path)


@dataclass
class Result:
    returncode: int
    stderr: str
    summary: dict[str, Any] | None
    pid: int


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts (each in a session of its own); all killed at teardown."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.fixture
def memwatch(tmp_path: Path, started: list[subprocess.Popen[str]]) -> Any:
    """Factory running the real CLI in a subprocess: memwatch(args, job, in_cgroup=, job_cgroup=).

    ``in_cgroup`` puts memwatch itself in a test cgroup (its limits then apply to the job's
    nested cgroup too); ``job_cgroup`` moves only the job there (``sh`` joins it and execs the
    job), so that cgroup's peak is the truth for the job alone. Every process is killed at
    teardown, also when the test fails.
    """

    def run(
        args: list[str],
        job: list[str],
        *,
        in_cgroup: Cgroup | None = None,
        job_cgroup: Cgroup | None = None,
        timeout: float = 300,
    ) -> Result:
        out = tmp_path / f"summary{len(started)}.json"
        if job_cgroup is not None:
            job = ["sh", "-c", f'echo $$ > {job_cgroup.procs} && exec "$@"', "sh", *job]
        cmd = [sys.executable, "-m", "memwatch", "--json", str(out), *args, "--", *job]
        if in_cgroup is not None:
            cmd = ["sh", "-c", f'echo $$ > {in_cgroup.procs} && exec "$@"', "sh", *cmd]
        proc = subprocess.Popen(
            cmd, cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        started.append(proc)
        _, stderr = proc.communicate(timeout=timeout)
        summary = json.loads(out.read_text()) if out.exists() else None
        return Result(proc.returncode, stderr, summary, proc.pid)

    return run


def memhog(*args: object) -> list[str]:
    return [sys.executable, MEMHOG, *map(str, args)]


@pytest.fixture
def cli(tmp_path: Path, started: list[subprocess.Popen[str]]) -> Any:
    """Runs ``python -m memwatch ARGS`` with the test's own history; gives (code, out, err).

    ``in_cgroup`` starts memwatch inside that cgroup (its limit then binds memwatch and
    every job it runs); ``wait=False`` returns the running process instead.
    """
    history = tmp_path / "history.sqlite"
    spool = tmp_path / "spool"

    def run(*args: str, wait: bool = True, in_cgroup: Cgroup | None = None) -> Any:
        env = {**os.environ, "MEMWATCH_HISTORY": str(history), "MEMWATCH_SPOOL": str(spool)}
        cmd = [sys.executable, "-m", "memwatch", *args]
        if in_cgroup is not None:
            cmd = ["sh", "-c", f'echo $$ > {in_cgroup.procs} && exec "$@"', "sh", *cmd]
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        if not wait:
            return proc
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out, err

    run.history = History(str(history))  # type: ignore[attr-defined]
    return run


def tool(name: str) -> str:
    """The path of a program the test needs (skip on a laptop without it, fail in CI)."""
    path = shutil.which(name)
    need(
        path is not None,
        f"needs {name} (Debian packages prometheus, prometheus-pushgateway, openssl; see .ci/run)",
    )
    assert path is not None
    return path


def free_port() -> int:
    """A loopback port free right now (a server may still lose it: callers retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def start_server(
    started: list[subprocess.Popen[str]],
    argv: Callable[[int, int], list[str]],
    log_dir: Path,
    name: str,
) -> str:
    """Start a Prometheus-family server (``argv(port, attempt)``) on a free loopback port.

    Returns its URL once /-/ready answers 200. A server that exits is retried on another
    port (the free port may be taken between the probe and the bind); every one is killed
    by the ``started`` fixture.
    """
    log = log_dir / f"{name}.log"
    for attempt in range(3):
        port = free_port()
        log = log_dir / f"{name}{attempt}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv(port, attempt),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        return url
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            break  # running but never ready: another port will not help
    pytest.fail(f"{name} did not become ready:\n{log.read_text()}")


@dataclass
class PgServer:
    """A PostgreSQL server of the test session's own, in a temporary directory."""

    bindir: Path
    data: Path
    port: int
    user: str | None  # the OS user the server runs as (postgres when the tests run as root)

    def ctl(self, *args: str) -> None:
        log = self.data.parent / "server.log"
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(log), *args],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-w", "-o", options, "start")

    def stop(self) -> None:
        self.ctl("-w", "-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://memwatch@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server (Debian's postgresql package): initdb + pg_ctl on a free port."""
    ctls = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    need(bool(ctls), "needs PostgreSQL server binaries in /usr/lib/postgresql/*/bin (see .ci/run)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        need(False, "needs psycopg 3: pip install 'memwatch[postgres]'")
    user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    top = Path(tempfile.mkdtemp(prefix="memwatch-pg-"))
    if user:
        shutil.chown(top, user)
    server = PgServer(ctls[-1].parent, top / "data", free_port(), user)
    try:
        subprocess.run(
            [str(server.bindir / "initdb"), "-D", str(server.data), "-U", "memwatch"]
            + ["--auth=trust", "--encoding=UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
            timeout=300,
        )
        for attempt in range(3):
            try:
                server.start()
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    pytest.fail(f"PostgreSQL did not start:\n{(top / 'server.log').read_text()}")
                server.port = free_port()  # the port was taken in between: another one
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.ctl("-m", "immediate", "stop")
        shutil.rmtree(top)


@pytest.fixture
def pg_url(postgres: PgServer) -> str:
    """The URL of a new, empty database on the session's server, for this test alone."""
    import psycopg

    name = f"test_{os.getpid()}_{int(time.monotonic_ns())}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.url(name)
