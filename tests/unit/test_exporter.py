"""The exporter: collector output from fake snapshots, batch-job results, auth, the server.

No process is started and nothing sleeps. Servers listen on a free loopback port and are
stopped by a fixture; TLS and promtool are in tests/integration/test_exporter.py.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import socket
import urllib.error
from collections.abc import Callable, Iterator
from email.message import Message
from io import BytesIO

import bcrypt
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from memwatch import __version__, cli, metrics_server, runmetrics
from memwatch.commands import run as run_command
from memwatch.config import WebConfig
from memwatch.errors import MetricsServerError, OutputError
from memwatch.exporter import LiveRun, SnapshotCollector, fan_out_samples, make_registry
from memwatch.measures import JobSnapshot, Sample, Snapshot
from memwatch.metrics_server import BasicAuth, MetricsServer
from memwatch.runmetrics import (
    push_run,
    pushgateway_url_problem,
    run_job_name,
    run_registry,
    write_run_textfile,
)

MIB = 1 << 20
ALLOWED_LABELS = {"job", "memtype", "size", "version"}

ETL = JobSnapshot(
    job="etl",
    processes=3,
    rss_bytes=700 * MIB,
    swap_bytes=120 * MIB,
    pss_bytes=650 * MIB,
    peak_total_bytes=900 * MIB,
    peak_at_unix_s=1_700_000_000.25,
    swap_suspected=True,
    unreadable_processes=1,
    observed_size=1e6,
    recommended_bytes=(("1e+06", 1000 * MIB), ("2e+06", 1900 * MIB)),
)
IDLE = JobSnapshot(
    job="idle",
    processes=0,
    rss_bytes=0,
    swap_bytes=0,
    pss_bytes=None,
    peak_total_bytes=0,
    peak_at_unix_s=None,
    swap_suspected=False,
    unreadable_processes=0,
)
SNAPSHOT = Snapshot(
    taken_at_unix_s=1_700_000_100.5,
    jobs=(ETL, IDLE),
    pass_duration_s=0.0042,
    passes_total=77,
    read_errors_total=5,
)


def scrape(registry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Family name -> {sorted label pairs: value}, parsed back from the text exposition."""
    text = generate_latest(registry).decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def job(name: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"job": name, **more}.items()))


# --- SnapshotCollector --------------------------------------------------------------------


def test_collector_exports_exactly_the_documented_series_from_a_snapshot():
    assert scrape(make_registry(lambda: SNAPSHOT)) == {
        "memwatch_job_memory_bytes": {
            job("etl", memtype="rss"): 700 * MIB,
            job("etl", memtype="swap"): 120 * MIB,
            job("etl", memtype="pss"): 650 * MIB,
            job("idle", memtype="rss"): 0,
            job("idle", memtype="swap"): 0,
        },
        "memwatch_job_processes": {job("etl"): 3, job("idle"): 0},
        "memwatch_job_peak_memory_bytes": {job("etl"): 900 * MIB, job("idle"): 0},
        "memwatch_job_peak_timestamp_seconds": {job("etl"): 1_700_000_000.25},
        "memwatch_job_swap_suspected": {job("etl"): 1, job("idle"): 0},
        "memwatch_job_unreadable_processes": {job("etl"): 1, job("idle"): 0},
        "memwatch_job_input_size": {job("etl"): 1e6},
        "memwatch_job_recommended_memory_bytes": {
            job("etl", size="1e+06"): 1000 * MIB,
            job("etl", size="2e+06"): 1900 * MIB,
        },
        "memwatch_sample_duration_seconds": {(): 0.0042},
        "memwatch_samples_total": {(): 77},
        "memwatch_read_errors_total": {(): 5},
        "memwatch_last_sample_timestamp_seconds": {(): 1_700_000_100.5},
        "memwatch_build_info": {(("version", __version__),): 1},
    }


def test_collector_types_and_help_texts():
    families = {f.name: f for f in SnapshotCollector(lambda: SNAPSHOT).collect()}
    assert families["memwatch_samples"].type == "counter"  # exposed as memwatch_samples_total
    assert families["memwatch_read_errors"].type == "counter"
    others = set(families) - {"memwatch_samples", "memwatch_read_errors"}
    assert {families[name].type for name in others} == {"gauge"}
    for family in families.values():
        assert len(family.documentation) > 20, family.name


def test_no_label_carries_a_pid_or_command_line():
    for family in SnapshotCollector(lambda: SNAPSHOT).collect():
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)


def test_a_job_with_no_processes_stays_exported_with_zero():
    metrics = scrape(make_registry(lambda: SNAPSHOT))
    assert metrics["memwatch_job_processes"][job("idle")] == 0
    assert metrics["memwatch_job_memory_bytes"][job("idle", memtype="rss")] == 0


def test_before_the_first_pass_only_the_build_info_is_exported():
    assert scrape(make_registry(lambda: None)) == {
        "memwatch_build_info": {(("version", __version__),): 1}
    }


def test_each_scrape_reads_the_latest_snapshot():
    current = [SNAPSHOT]
    registry = make_registry(lambda: current[0])
    assert scrape(registry)["memwatch_samples_total"] == {(): 77}
    current[0] = Snapshot(2e9, (IDLE,), 0.001, 78, 5)
    after = scrape(registry)
    assert after["memwatch_samples_total"] == {(): 78}
    assert set(after["memwatch_job_processes"]) == {job("idle")}


def test_describe_names_every_family_collect_can_yield():
    collector = SnapshotCollector(lambda: SNAPSHOT)
    described = {f.name for f in collector.describe()}
    assert {f.name for f in collector.collect()} == described
    assert all(not f.samples for f in collector.describe())


def test_registry_is_private_with_no_default_collectors():
    metrics = scrape(make_registry(lambda: SNAPSHOT))
    assert all(name.startswith("memwatch_") for name in metrics)
    assert "process_" not in generate_latest(make_registry(lambda: None)).decode()


# --- LiveRun: a wrapped run's samples as snapshots ----------------------------------------


def sample(at_s: float, rss_mib: float, swap_mib: float = 0, processes: int = 1) -> Sample:
    rss, swap = int(rss_mib * MIB), int(swap_mib * MIB)
    return Sample(at_s, rss + swap, rss, swap, None, processes)


def test_live_run_keeps_the_peak_and_its_wall_clock_time():
    clock = iter([1000.5, 1000.7, 1000.9])
    live = LiveRun("train", 0.1, size=5.0, clock=lambda: next(clock))
    assert live.snapshot() is None
    live(sample(0.5, 100))
    live(sample(0.7, 300, processes=4))
    live(sample(0.9, 50, 10))
    snap = live.snapshot()
    assert snap is not None
    assert snap.passes_total == 3
    assert snap.taken_at_unix_s == pytest.approx(1000.9)
    [j] = snap.jobs
    assert (j.job, j.processes, j.rss_bytes, j.swap_bytes) == ("train", 1, 50 * MIB, 10 * MIB)
    assert j.peak_total_bytes == 300 * MIB
    assert j.peak_at_unix_s == pytest.approx(1000.7)
    assert j.observed_size == 5.0
    assert j.swap_suspected is False


def test_live_run_pass_duration_is_the_time_past_its_slot():
    live = LiveRun("j", 0.1, clock=lambda: 0.0)
    live(sample(0.3021, 1))
    assert live.snapshot().pass_duration_s == pytest.approx(0.0021)  # type: ignore[union-attr]


def test_live_run_suspects_swapping_while_rss_is_flat_and_swap_grows():
    live = LiveRun("j", 0.1, clock=lambda: 0.0)
    for i in range(8):
        live(sample(i * 0.1, 200, 20 * i))
    assert live.snapshot().jobs[0].swap_suspected is True  # type: ignore[union-attr]
    live(sample(0.9, 10))  # RSS fell: a new window, not (yet) a plateau
    assert live.snapshot().jobs[0].swap_suspected is False  # type: ignore[union-attr]


def test_live_run_exports_through_the_collector():
    live = LiveRun("train", 0.1, clock=lambda: 50.0)
    live(sample(1.0, 64))
    metrics = scrape(make_registry(live.snapshot))
    assert metrics["memwatch_job_memory_bytes"][job("train", memtype="rss")] == 64 * MIB
    assert metrics["memwatch_job_peak_timestamp_seconds"][job("train")] == 50.0


def test_fan_out_calls_every_callback_in_turn():
    seen: list[str] = []
    assert fan_out_samples(None, None) is None
    one = fan_out_samples(None, lambda s: seen.append("a"))
    both = fan_out_samples(lambda s: seen.append("a"), lambda s: seen.append("b"))
    assert one is not None and both is not None
    both(sample(0, 1))
    assert seen == ["a", "b"]


# --- batch-job results --------------------------------------------------------------------


def test_run_metrics_follow_the_batch_job_conventions(run_summary):
    summary = run_summary(job="etl", size=2e6, swap_suspected=True)
    metrics = scrape(run_registry(summary, completed_at_unix_s=1_700_000_000.0))
    e = job("etl")
    assert metrics == {
        "memwatch_run_peak_memory_bytes": {e: 820 * MIB},
        "memwatch_run_peak_rss_bytes": {e: 700 * MIB},
        "memwatch_run_peak_swap_bytes": {e: 120 * MIB},
        "memwatch_run_duration_seconds": {e: pytest.approx(12.3456789)},
        "memwatch_run_exit_status": {e: 0},
        "memwatch_run_swap_suspected": {e: 1},
        "memwatch_run_oom_killed": {e: 0},
        "memwatch_run_last_completion_timestamp_seconds": {e: 1_700_000_000.0},
        "memwatch_run_input_size": {e: 2e6},
    }


def test_run_metrics_of_a_killed_run_without_size_or_swap_figures(run_summary):
    summary = run_summary(exit_code=None, signal=9, oom_killed=True)
    summary = dataclasses.replace(summary, peak=dataclasses.replace(summary.peak, swap_bytes=None))
    metrics = scrape(run_registry(summary))
    name = job("python3")  # no --job: the command's basename
    assert metrics["memwatch_run_exit_status"] == {name: 137}
    assert metrics["memwatch_run_oom_killed"] == {name: 1}
    assert "memwatch_run_peak_swap_bytes" not in metrics
    assert "memwatch_run_input_size" not in metrics


def test_run_job_name_is_the_job_else_the_commands_basename():
    assert run_job_name("etl", ["/usr/bin/python3", "x.py"]) == "etl"
    assert run_job_name(None, ["/usr/bin/python3", "x.py"]) == "python3"
    assert run_job_name(None, []) == "memwatch"


def test_textfile_is_written_whole_and_nothing_else_is_left(tmp_path, run_summary):
    path = tmp_path / "memwatch.prom"
    path.write_text("old\n")
    write_run_textfile(run_summary(job="etl"), str(path))
    text = path.read_text()
    assert 'memwatch_run_peak_memory_bytes{job="etl"}' in text
    assert "old" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["memwatch.prom"]


def test_textfile_failure_names_the_path(tmp_path, run_summary):
    path = tmp_path / "missing" / "memwatch.prom"
    with pytest.raises(OutputError, match=r"--textfile .*missing/memwatch\.prom: ") as err:
        write_run_textfile(run_summary(), str(path))
    assert "\n" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_push_to_nothing_listening_names_the_url(run_summary):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(OutputError, match=f"--pushgateway {url}: .*refused"):
        push_run(run_summary(), url)


def test_push_rejected_by_the_gateway_says_why(monkeypatch, run_summary):
    def reject(url, job, registry, timeout):
        body = BytesIO(b"pushed metrics are invalid or inconsistent with existing metrics\n")
        raise urllib.error.HTTPError(url, 400, "Bad Request", Message(), body)

    monkeypatch.setattr(runmetrics, "push_to_gateway", reject)
    with pytest.raises(OutputError) as err:
        push_run(run_summary(), "http://gw:9091")
    assert str(err.value) == (
        "cannot push to --pushgateway http://gw:9091: HTTP 400 Bad Request: "
        "pushed metrics are invalid or inconsistent with existing metrics"
    )


def test_push_groups_by_job(monkeypatch, run_summary):
    pushed = []
    monkeypatch.setattr(
        runmetrics, "push_to_gateway", lambda url, job, registry, timeout: pushed.append((url, job))
    )
    push_run(run_summary(job="nightly"), "gw:9091")
    push_run(run_summary(), "gw:9091")
    assert pushed == [("gw:9091", "nightly"), ("gw:9091", "python3")]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:9091", None),
        ("https://gw.example/prefix", None),
        ("gw:9091", None),
        ("ftp://gw:9091", "http"),
        ("http://", "no host"),
        ("http://gw:port", "not a usable URL"),
        ("http://[::1", "not a usable URL"),
    ],
)
def test_pushgateway_url_is_checked_before_the_run(url, problem):
    found = pushgateway_url_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))


# --- basic auth -----------------------------------------------------------------------------


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def alice_hash() -> str:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def checkpw_calls(monkeypatch) -> list[bytes]:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(metrics_server.bcrypt, "checkpw", counting)
    return calls


def test_basic_auth_accepts_the_right_password_only(alice_hash):
    auth = BasicAuth([("alice", alice_hash)])
    assert auth.check(header("alice", "s3cret"))
    for bad in [
        header("alice", "wrong"),
        header("bob", "s3cret"),
        header("alice", ""),
        header("alice", "s3cret" + "x" * 100),  # beyond bcrypt's 72 bytes
        None,
        "",
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ]:
        assert not auth.check(bad), bad


def test_basic_auth_caches_successes_not_failures(alice_hash, checkpw_calls):
    auth = BasicAuth([("alice", alice_hash)])
    assert auth.check(header("alice", "s3cret"))
    assert auth.check(header("alice", "s3cret"))
    assert len(checkpw_calls) == 1  # the second scrape did not pay bcrypt again
    assert not auth.check(header("alice", "wrong"))
    assert not auth.check(header("alice", "wrong"))
    assert len(checkpw_calls) == 3  # guesses always pay


def test_unknown_users_pay_bcrypt_too(alice_hash, checkpw_calls):
    assert not BasicAuth([("alice", alice_hash)]).check(header("mallory", "x"))
    assert checkpw_calls == [b"x"]


def test_an_unknown_user_costs_the_bcrypt_rounds_of_the_costliest_known_user(monkeypatch):
    # Timing told which users exist: a fixed cost-10 dummy against real hashes of cost 12
    # and 14. The cost (log2 of the rounds) of each hash checked is what decides the time.
    cheap = bcrypt.hashpw(b"a", bcrypt.gensalt(rounds=4)).decode()
    dear = bcrypt.hashpw(b"b", bcrypt.gensalt(rounds=5)).decode()
    costs: list[int] = []
    real = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        costs.append(int(hashed[4:6]))
        return real(password, hashed)

    monkeypatch.setattr(metrics_server.bcrypt, "checkpw", recording)
    auth = BasicAuth([("alice", cheap), ("bob", dear)])
    assert not auth.check(header("bob", "wrong"))
    assert not auth.check(header("mallory", "b"))  # bob's password, from an unknown user
    assert costs == [5, 5]


def test_the_cache_holds_no_password(alice_hash):
    auth = BasicAuth([("alice", alice_hash)])
    auth.check(header("alice", "s3cret"))
    assert b"s3cret" not in repr(auth.__dict__).encode()


def test_no_users_means_no_auth():
    auth = BasicAuth([])
    assert not auth.enabled
    assert auth.check(None)


def test_a_hash_that_is_not_bcrypt_is_refused_without_showing_it():
    with pytest.raises(MetricsServerError) as err:
        BasicAuth([("alice", "plain-text-secret")])
    assert "alice" in str(err.value)
    assert "plain-text-secret" not in str(err.value)


# --- the HTTP server (plain HTTP on loopback; TLS is in tests/integration) ------------------


@pytest.fixture
def serve() -> Iterator[Callable[..., MetricsServer]]:
    servers: list[MetricsServer] = []

    def start(web: WebConfig | None = None, port: int = 0) -> MetricsServer:
        server = MetricsServer(make_registry(lambda: SNAPSHOT), "127.0.0.1", port, web)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def get(server: MetricsServer, path: str, auth: str | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_server_serves_metrics_on_the_port_it_bound(serve):
    server = serve()
    assert server.port != 0
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b'memwatch_job_processes{job="idle"} 0.0' in body


def test_server_landing_page_and_unknown_paths(serve):
    server = serve()
    status, _, body = get(server, "/")
    assert status == 200 and b'href="/metrics"' in body
    assert get(server, "/nope")[0] == 404


def test_server_with_basic_auth_refuses_without_credentials(serve, alice_hash):
    server = serve(WebConfig(basic_auth_users=(("alice", alice_hash),)))
    status, headers, _ = get(server, "/metrics")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Basic realm="memwatch"')
    assert get(server, "/metrics", header("alice", "wrong"))[0] == 401
    status, _, body = get(server, "/metrics", header("alice", "s3cret"))
    assert status == 200 and b"memwatch_build_info" in body


def test_port_in_use_is_a_one_line_error(serve):
    taken = serve()
    with pytest.raises(MetricsServerError) as err:
        serve(port=taken.port)
    assert str(err.value) == (
        f"cannot listen on 127.0.0.1:{taken.port}: port already in use; choose another "
        "port or stop what listens there"
    )


def test_missing_tls_files_are_a_one_line_error(tmp_path):
    web = WebConfig(cert_file=str(tmp_path / "no.crt"), key_file=str(tmp_path / "no.key"))
    server = MetricsServer(make_registry(lambda: None), "127.0.0.1", 0, web)
    with pytest.raises(MetricsServerError, match=r"cannot load TLS cert_file .*no\.crt"):
        server.start()
    server.stop()  # never started: a no-op


def test_stop_is_idempotent_and_frees_the_port(serve):
    server = serve()
    port = server.port
    server.stop()
    server.stop()
    again = serve(port=port)
    assert get(again, "/metrics")[0] == 200


# --- memwatch run: the new options, with a fake measure -------------------------------------


@pytest.fixture
def fake_run(monkeypatch, run_summary):
    calls: list[dict[str, object]] = []

    def measure(command, **kwargs):
        calls.append(kwargs)
        on_sample = kwargs["on_sample"]
        if on_sample is not None:
            on_sample(sample(0.1, 64))
        return run_summary(command=tuple(command), job=kwargs["job"], size=kwargs["size"])

    monkeypatch.setattr(run_command, "measure", measure)
    return calls


def usage_error(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--textfile", "out.txt"], "must end in .prom"),
        (["--textfile", "/nonexistent-dir/x.prom"], "does not exist"),
        (["--pushgateway", "ftp://gw"], "--pushgateway must be an http"),
        (["--metrics-port", "70000"], "between 0 and 65535"),
        (["--metrics-port", "x"], "--metrics-port"),
    ],
)
def test_bad_export_options_are_usage_errors_before_the_run(capsys, fake_run, argv, expected):
    assert expected in usage_error(capsys, [*argv, "--", "true"])
    assert fake_run == []


def test_metrics_port_in_use_fails_before_the_command_starts(capsys, fake_run, serve):
    taken = serve()
    code = cli.main(["--metrics-port", str(taken.port), "--", "true"])
    err = capsys.readouterr().err
    assert code == 125
    assert err == (
        f"memwatch: error: cannot listen on 127.0.0.1:{taken.port}: port already in use; "
        "choose another port or stop what listens there\n"
    )
    assert fake_run == []


def test_metrics_port_feeds_live_samples_and_the_samples_file(capsys, fake_run, tmp_path):
    samples = tmp_path / "s.csv"
    assert cli.main(["--metrics-port", "0", "--samples", str(samples), "--", "true"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("memwatch: serving live metrics at http://127.0.0.1:")
    assert len(samples.read_text().splitlines()) == 2  # header + the fake's one sample


def test_textfile_gets_the_result(capsys, fake_run, tmp_path):
    path = tmp_path / "job.prom"
    assert cli.main(["-q", "--job", "etl", "--textfile", str(path), "--", "true"]) == 0
    assert 'memwatch_run_exit_status{job="etl"} 0.0' in path.read_text()
    assert capsys.readouterr().err == ""


def test_a_failed_push_keeps_the_summary_and_exits_125(capsys, fake_run, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    json_path = tmp_path / "peak.json"
    code = cli.main(["-q", "--json", str(json_path), "--pushgateway", url, "--", "true"])
    err = capsys.readouterr().err
    assert code == 125
    assert err.startswith("memwatch: peak ")  # the summary, even with -q
    last = err.splitlines()[-1]
    assert last.startswith(f"memwatch: error: cannot push to --pushgateway {url}: ")
    assert last.endswith("(the command ended with exit status 0; its summary is above)")
    assert json_path.exists()  # the other outputs are still written


def test_push_and_textfile_failures_are_each_reported(capsys, fake_run, tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    path = tmp_path / "gone" / "x.prom"
    monkeypatch.setattr(run_command, "check_writable", lambda path, option: None)
    code = cli.main(["--textfile", str(path), "--pushgateway", url, "--", "true"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 125
    assert len(errors) == 2
    assert errors[0].startswith(f"memwatch: error: cannot write --textfile {path}: ")
    assert errors[1].startswith(f"memwatch: error: cannot push to --pushgateway {url}: ")


def test_without_export_options_measure_gets_only_the_samples_writer(fake_run):
    assert cli.main(["-q", "--", "true"]) == 0
    assert fake_run[0]["on_sample"] is None


def test_a_pushgateway_url_with_a_password_is_refused_without_echoing_it():
    from memwatch.runmetrics import pushgateway_url_problem

    problem = pushgateway_url_problem("http://user:s3cret@127.0.0.1:9091/")
    assert problem is not None and "s3cret" not in problem and "user or password" in problem
