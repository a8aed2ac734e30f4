"""`memwatch run -- CMD` (also `memwatch -- CMD`): wrap a command and report its true peak."""

from __future__ import annotations

import argparse
import dataclasses
import os

from ..errors import OutputError, UsageError
from ..history import new_entry
from ..measures import RunSummary
from ..report import SampleWriter, check_writable, format_human, valid_utf8, write_json
from ..run import measure
from ..spool import deliver
from ._common import (
    Command,
    add_history_option,
    add_measure_options,
    command_of,
    history_ready,
    say,
    size,
)

DESCRIPTION = """\
Run CMD exactly as it would run without memwatch (same stdin, stdout, stderr and exit
status) and, when it ends, print its true peak memory to stderr: RAM + swap summed over
the whole process tree, shared pages counted once where the kernel can tell, spikes
between samples caught by the kernel's high-water marks."""

EPILOG = """\
where the peak comes from:
  cgroup    memwatch put the job in a memory cgroup of its own and read the kernel's
            exact peak (needs root on cgroup v1, or a delegated cgroup v2)
  sampling  the largest total of RSS + swap (PSS + SwapPss with --pss) it sampled
  hwm       per-process VmHWM (and ru_maxrss) show a higher peak between two samples

exit status: the command's own; 128+N if it died from signal N; 125 if memwatch
itself failed; 126 if CMD is not executable; 127 if it is not found; 2 for a usage
error (no command started).

examples:
  memwatch -- python train.py --rows 1000000
  memwatch --json peak.json --samples mem.csv --size 1e6 -- ./pipeline.sh input.csv"""


def prepare_parser(p: argparse.ArgumentParser) -> None:
    """The options of `memwatch run`."""
    add_measure_options(p)
    p.add_argument(
        "--json", metavar="PATH", help="write the summary as JSON to PATH (- for stdout)"
    )
    p.add_argument(
        "--samples",
        metavar="PATH",
        help="stream every sample to PATH (.csv or .jsonl; - for CSV on stdout), flushed "
        "as it is taken",
    )
    p.add_argument(
        "--size",
        type=size,
        metavar="N",
        help="input size of this run (a number), kept in the summary",
    )
    p.add_argument(
        "--job",
        # Bytes that are not UTF-8 (legal in argv) as U+FFFD: the history, the JSON and
        # Prometheus labels take UTF-8 only.
        type=valid_utf8,
        metavar="NAME",
        help="job name; a run with a job name is recorded in the history",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the job's live memory as Prometheus metrics at "
        "http://ADDRESS:PORT/metrics while it runs (0: any free port, printed at start)",
    )
    p.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address --metrics-port listens on (default 127.0.0.1, loopback only)",
    )
    p.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the final result to this Prometheus Pushgateway when the job ends "
        "(grouping key job=--job, else the command's basename)",
    )
    p.add_argument(
        "--textfile",
        metavar="PATH.prom",
        help="write the final result atomically to PATH.prom for node_exporter's "
        "textfile collector",
    )
    add_history_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print no summary to stderr")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command")


def run(args: argparse.Namespace) -> int:
    """Check the outputs, measure the command, then record, export and print its summary."""
    command = command_of(args)
    if not command:
        raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch run --help')")
    _check_outputs(args)
    store = history_ready(args.history) if args.job is not None else None
    summary = _measure(args, command)
    failed = _export(args, summary)
    # The history first: a --json that cannot be written must not cost the recorded run.
    if store is not None:
        try:
            spooled = deliver(store, new_entry(summary, args.job))
        except OutputError as err:  # neither the history nor the spool took the run
            failed.insert(0, err)
        else:
            if spooled:
                # The run and its status stand; where its record waits is said even with -q.
                summary = dataclasses.replace(summary, warnings=(*summary.warnings, spooled))
                if args.quiet:
                    say(f"memwatch: warning: {spooled}")
    if args.json:
        try:
            write_json(summary, args.json)
        except OutputError as err:
            return _outputs_failed(summary, [err, *failed])
    if failed:
        return _outputs_failed(summary, failed)
    if not args.quiet:
        say(format_human(summary))
    return summary.exit_status


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output that cannot be written is a usage error before the command starts."""
    if args.json:
        check_writable(args.json, "--json")
        if args.samples and os.path.realpath(args.json) == os.path.realpath(args.samples):
            raise UsageError(f"--json and --samples both name {args.json}: give two files")
    if args.textfile:
        if not args.textfile.endswith(".prom"):
            raise UsageError(
                f"--textfile {args.textfile}: the name must end in .prom (node_exporter's "
                "textfile collector reads only *.prom files)"
            )
        check_writable(args.textfile, "--textfile")
    if args.pushgateway:
        from ..runmetrics import pushgateway_url_problem

        problem = pushgateway_url_problem(args.pushgateway)
        if problem:
            raise UsageError(f"--pushgateway {problem}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be between 0 and 65535 (got {args.metrics_port})")


def _measure(args: argparse.Namespace, command: list[str]) -> RunSummary:
    """Run the command under measurement, streaming samples and live metrics if asked."""
    # The exporter (prometheus_client, bcrypt) is imported only when asked for: wrapping a
    # job must stay light.
    live = server = writer = None
    try:
        if args.metrics_port is not None:
            from ..exporter import LiveRun, make_registry
            from ..metrics_server import MetricsServer
            from ..runmetrics import run_job_name

            live = LiveRun(run_job_name(args.job, command), args.interval, size=args.size)
            server = MetricsServer(
                make_registry(live.snapshot), args.metrics_address, args.metrics_port
            )
            server.start()  # a port in use fails here, before the command starts
            if not args.quiet:
                say(f"memwatch: serving live metrics at {server.url}")
        writer = SampleWriter(args.samples) if args.samples else None
        if live is not None:
            from ..exporter import fan_out_samples

            on_sample = fan_out_samples(writer, live)
        else:
            on_sample = writer
        summary = measure(
            command,
            interval_s=args.interval,
            pss=args.pss,
            use_cgroup=not args.no_cgroup,
            backend=args.backend,
            on_sample=on_sample,
            forward_signals=True,
            job=args.job,
            size=args.size,
        )
    finally:
        if writer:
            writer.close()
        if server:
            server.stop()
    if writer and writer.error:
        summary = dataclasses.replace(summary, warnings=(*summary.warnings, writer.error))
    return summary


def _export(args: argparse.Namespace, summary: RunSummary) -> list[OutputError]:
    """Write --textfile and push to --pushgateway; returns what failed (each one is tried)."""
    failed: list[OutputError] = []
    if args.textfile or args.pushgateway:
        from ..runmetrics import push_run, write_run_textfile

        try:
            if args.textfile:
                write_run_textfile(summary, args.textfile)
        except OutputError as err:
            failed.append(err)
        try:
            if args.pushgateway:
                push_run(summary, args.pushgateway)
        except OutputError as err:
            failed.append(err)
    return failed


def _outputs_failed(summary: RunSummary, errors: list[OutputError]) -> int:
    """The measurement is not lost: it goes to stderr even with --quiet, then each error."""
    say(format_human(summary))
    for err in errors:
        say(
            f"memwatch: error: {err} (the command ended with exit status "
            f"{summary.exit_status}; its summary is above)"
        )
    return errors[0].exit_code


COMMAND = Command(
    help="run a command and report its true peak memory",
    prepare_parser=prepare_parser,
    run=run,
    description=DESCRIPTION,
    epilog=EPILOG,
    raw=True,
)
