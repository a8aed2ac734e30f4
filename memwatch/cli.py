"""Command line: thin argparse front over the library. ``main(argv) -> int``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .backend import BACKEND_CHOICES, machine_memory
from .cgroup import memory_limit
from .errors import FitError, HistoryError, MemwatchError, OutputError, UsageError
from .history import DEFAULT_ENV, History, default_path
from .limits import DEFAULT_MARGIN, REFUSE_EXTRAPOLATION
from .report import (
    SampleWriter,
    check_writable,
    describe_ending,
    format_human,
    human_bytes,
    json_number,
    parse_bytes,
    parse_size,
    read_samples,
    size_text,
    write_json,
)
from .run import interval_problem, measure
from .sweep import SweepRun, substitute, sweep

if TYPE_CHECKING:
    from .model import Measurement

SUBCOMMANDS = ("run", "sweep", "fit", "predict", "history", "plot", "check-config", "daemon")

RUN_DESCRIPTION = """\
Run CMD exactly as it would run without memwatch (same stdin, stdout, stderr and exit
status) and, when it ends, print its true peak memory to stderr: RAM + swap summed over
the whole process tree, shared pages counted once where the kernel can tell, spikes
between samples caught by the kernel's high-water marks."""

RUN_EPILOG = """\
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


SWEEP_DESCRIPTION = """\
Run CMD once per size (and repetition) with {size} replaced by the size, each under the
same true-peak measurement as 'memwatch run'. Every run is recorded in the history as it
ends. Then print one line per size, the fitted shape of growth in words, and for each
--at size the expected peak and the memory to provision. A failed run is reported with
its size and exit status and the others are still fitted. The job's stdin is /dev/null
and its stdout goes to memwatch's stderr, so stdout holds only the report (or the JSON
with --json)."""

FIT_EPILOG = """\
how the recommendation is made:
  Shapes a, a+b*x, a+b*x*ln(x), a+b*x^k and a+b*x+c*x^2 are fitted (growth terms never
  negative) and scored by leave-one-size-out error. Every shape the data cannot rule out
  is plausible, and the recommendation covers the highest of them at the target size,
  widened by the noise between repeats, times (1 + margin), and never below the largest
  peak measured at or below that size times (1 + margin).

warnings: fewer than 5 sizes; more than 4x beyond the largest measured size (more
than 16x is refused without --force); plausible shapes that disagree by more than the
margin; noisy repeats; suspected swapping in a measured run.

exit status: 0; 1 when the input cannot be fitted or a run of a sweep failed;
2 for a usage error; 128+N when a sweep was stopped by signal N.

examples:
  memwatch sweep --sizes 1000,2000,3000,4000,5000 --at 20000 -- python job.py {size}
  memwatch fit runs.csv --at 1e7 --json
  memwatch predict --job etl --at 5e6 --plot etl.png"""


CHECK_CONFIG_DESCRIPTION = """\
Validate a memwatch daemon config file (see config/memwatch.yaml) without starting
anything: YAML syntax, unknown keys, every value, regexes compiled, TLS certificate and
key loaded, basic auth values checked to be bcrypt hashes (never printed). Prints
'PATH: OK (N watch entries)' on stdout, or every problem found, one per line on stderr:

  FILE:LINE: key.path: problem (got value)"""

CHECK_CONFIG_EPILOG = """\
exit status: 0 when the file is valid; 1 when it is not (or cannot be read);
2 for a usage error.

example:
  memwatch check-config /etc/memwatch/memwatch.yaml && systemctl reload memwatch"""


DAEMON_CONFIG = "/etc/memwatch/memwatch.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage dump: what went wrong and where to look.
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    problem = interval_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _size(text: str) -> float:
    """An input size: a finite number >= 0 (1000, 2.5, 1e6)."""
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _sizes(text: str) -> list[str]:
    """'1000,2000,4e3' -> the sizes as typed (they go into the command verbatim)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give sizes separated by commas, e.g. 1000,2000,4000")
    for part in parts:
        _size(part)
    if len({float(p) for p in parts}) < 2:
        raise argparse.ArgumentTypeError(f"need 2 or more distinct sizes to fit (got {text})")
    return parts


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 (got {text})")
    return int(text)


def _margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (0.1 means 10 %%)") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10 (got {text}; 0.1 is 10 %%)")
    return value


def _memory(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535 (got {text})")
    return int(text)


def _add_measure_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interval",
        type=_interval,
        default=0.1,
        metavar="SECONDS",
        help="sampling interval, down to 0.001 (default 0.1: sampling then takes ~4.5%% "
        "of one core for a 100-process tree, under 1%% for ten processes; spikes in "
        "between are caught by high-water marks and the cgroup peak)",
    )
    p.add_argument(
        "--pss",
        action="store_true",
        help="count proportional set size (smaps_rollup) so copy-on-write pages shared "
        "by forked processes count once; costs ~7x more per process",
    )
    p.add_argument("--no-cgroup", action="store_true", help="do not make a job cgroup; sample only")
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="how processes are sampled: proc reads Linux /proc (the default where it exists), "
        "psutil works anywhere but gives less: no per-process high-water mark outside "
        "Windows (spikes between samples are seen only in the command's own ru_maxrss, no "
        "upper bound), swap and PSS per process only on Linux, SwapPss nowhere",
    )


def _add_history_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--history",
        metavar="PATH",
        help=f"run history database (default ${DEFAULT_ENV}, else "
        "$XDG_DATA_HOME/memwatch/history.sqlite)",
    )


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--at",
        type=_size,
        action="append",
        default=[],
        metavar="SIZE",
        help="predict the peak and recommend an allocation at SIZE (repeatable)",
    )
    p.add_argument(
        "--margin",
        type=_margin,
        default=DEFAULT_MARGIN,
        metavar="FRACTION",
        help="safety margin added on top of the highest plausible shape (default 0.1 = 10%%)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help=f"predict even beyond {REFUSE_EXTRAPOLATION:g}x the largest measured size",
    )
    p.add_argument(
        "--budget",
        type=_memory,
        metavar="MEM",
        help="memory to plan for, e.g. 16GiB, 512M, 200GB (default: the cgroup memory limit "
        "over memwatch if one is set, else this machine's RAM): says whether each --at size "
        "fits and how many run at once",
    )
    p.add_argument(
        "--max-size-for",
        type=_memory,
        metavar="MEM",
        help="also find the largest input size whose recommended allocation fits in MEM",
    )
    p.add_argument("--json", action="store_true", help="print the fit as JSON on stdout")
    p.add_argument(
        "--plot", metavar="PATH", help="draw points, fitted shapes and advice (.png/.svg/.pdf)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memwatch",
        description="Measure how much memory a job really needs, and predict it at other "
        "input sizes. Shorthand: 'memwatch [options] -- CMD' is 'memwatch run [options] -- CMD'.",
    )
    parser.add_argument("--version", action="version", version=f"memwatch {__version__}")
    sub = parser.add_subparsers(dest="subcommand", parser_class=_Parser)
    raw = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser(
        "run",
        help="run a command and report its true peak memory",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=raw,
    )
    _add_measure_options(run)
    run.add_argument("--json", metavar="PATH", help="write the summary as JSON to PATH")
    run.add_argument(
        "--samples",
        metavar="PATH",
        help="stream every sample to PATH (.csv or .jsonl), flushed as it is taken",
    )
    run.add_argument(
        "--size",
        type=_size,
        metavar="N",
        help="input size of this run (a number), kept in the summary",
    )
    run.add_argument(
        "--job",
        metavar="NAME",
        help="job name; a run with a job name is recorded in the history",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve the job's live memory as Prometheus metrics at "
        "http://ADDRESS:PORT/metrics while it runs (0: any free port, printed at start)",
    )
    run.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address --metrics-port listens on (default 127.0.0.1, loopback only)",
    )
    run.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the final result to this Prometheus Pushgateway when the job ends "
        "(grouping key job=--job, else the command's basename)",
    )
    run.add_argument(
        "--textfile",
        metavar="PATH.prom",
        help="write the final result atomically to PATH.prom for node_exporter's "
        "textfile collector",
    )
    _add_history_option(run)
    run.add_argument("-q", "--quiet", action="store_true", help="print no summary to stderr")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ...", help="the command")

    sweep = sub.add_parser(
        "sweep",
        help="run a command at several input sizes, fit, and recommend memory",
        description=SWEEP_DESCRIPTION,
        epilog=FIT_EPILOG,
        formatter_class=raw,
    )
    sweep.add_argument(
        "--sizes",
        type=_sizes,
        required=True,
        metavar="N,N,...",
        help="input sizes to run, comma-separated; each replaces {size} in CMD as typed",
    )
    sweep.add_argument(
        "--repeat",
        type=_count,
        default=1,
        metavar="N",
        help="runs per size (default 1); repeats measure noise and widen the bound",
    )
    sweep.add_argument(
        "--job", metavar="NAME", help="job name in the history (default: CMD as typed)"
    )
    sweep.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the first, unfitted run at the smallest size (it loads the job's "
        "libraries into the page cache, which the cgroup would otherwise charge to the "
        "first fitted run)",
    )
    _add_fit_options(sweep)
    _add_measure_options(sweep)
    _add_history_option(sweep)
    sweep.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD ... {size} ...", help="the command"
    )

    fit = sub.add_parser(
        "fit",
        help="fit peaks measured anywhere (CSV size,peak_bytes) and recommend memory",
        description="Fit peak memory against input size from a CSV file with the header "
        "size,peak_bytes (one row per run, repeats of a size allowed) and recommend what "
        "to provision at each --at size.",
        epilog=FIT_EPILOG,
        formatter_class=raw,
    )
    fit.add_argument("runs", metavar="RUNS.csv", help="CSV file with the header size,peak_bytes")
    _add_fit_options(fit)

    predict = sub.add_parser(
        "predict",
        help="fit a job's recorded runs from the history and recommend memory",
        description="Fit the successful runs recorded for JOB (by 'memwatch run --job JOB "
        "--size N' or 'memwatch sweep') and recommend what to provision at each --at size.",
        epilog=FIT_EPILOG,
        formatter_class=raw,
    )
    predict.add_argument("--job", required=True, metavar="NAME", help="the job to fit")
    _add_fit_options(predict)
    _add_history_option(predict)

    history = sub.add_parser("history", help="list recorded runs")
    history.add_argument("--job", metavar="NAME", help="only this job's runs")
    history.add_argument("--json", action="store_true", help="print the runs as JSON Lines")
    _add_history_option(history)

    plot = sub.add_parser(
        "plot",
        help="draw one run's RAM and swap over time from its samples file",
        description="Draw RAM and swap over time (stacked) from a file written by "
        "'memwatch run --samples', with the peak and suspected-swapping ranges marked.",
    )
    plot.add_argument("samples", metavar="SAMPLES", help="a .csv or .jsonl samples file")
    plot.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="image to write (.png/.svg/.pdf)"
    )

    check_config = sub.add_parser(
        "check-config",
        help="validate a daemon config file (watch list, listen address, TLS, basic auth)",
        description=CHECK_CONFIG_DESCRIPTION,
        epilog=CHECK_CONFIG_EPILOG,
        formatter_class=raw,
    )
    check_config.add_argument("config", metavar="PATH", help="the YAML config file")

    daemon = sub.add_parser(
        "daemon",
        help="watch the process trees of a YAML watch list and serve Prometheus metrics",
        description="Sample the processes named in the config's watch list and serve their "
        "memory, peaks, swap suspicion and recommendations at /metrics. SIGHUP reloads the "
        "config (a bad one is reported and the running one stays); SIGTERM stops. Under "
        "systemd (Type=notify) it reports READY/RELOADING/STOPPING and pings the watchdog.",
        epilog="exit status: 0 after SIGTERM or SIGINT; 1 when the config is invalid or "
        "the port cannot be served; 2 for a usage error.",
    )
    daemon.add_argument(
        "--config",
        default=DAEMON_CONFIG,
        metavar="PATH",
        help=f"the YAML config (default {DAEMON_CONFIG}; check it with memwatch check-config)",
    )
    daemon.add_argument(
        "--port",
        type=_port,
        metavar="PORT",
        help="listen on PORT instead of the config's port (also after reloads)",
    )
    return parser


def _say(text: str) -> None:
    """Print to stderr; a closed or full stderr must not cost the command's exit status."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memwatch`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in (*SUBCOMMANDS, "-h", "--help", "--version"):
        args_list.insert(0, "run")
    try:
        args = build_parser().parse_args(args_list)
        if args.subcommand is None:
            raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch --help')")
        if args.subcommand in ("run", "sweep"):
            # REMAINDER keeps everything from the command on, '--' included: CMD's own
            # options and its own '--' reach it untouched.
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            return _run(args, command) if args.subcommand == "run" else _sweep(args, command)
        handlers = {
            "fit": _fit,
            "predict": _predict,
            "history": _history,
            "plot": _plot,
            "check-config": _check_config,
            "daemon": _daemon,
        }
        return handlers[args.subcommand](args)
    except MemwatchError as err:
        _say(f"memwatch: error: {err}")
        return err.exit_code
    except BrokenPipeError:  # `memwatch history | head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:  # outside a wrapped command (opening a FIFO, a long fit)
        _say("memwatch: interrupted")
        return 128 + 2
    except OSError as err:  # the last line of defence: one line, no traceback
        _say(f"memwatch: error: {err}")
        return 125


def _run(args: argparse.Namespace, command: list[str]) -> int:
    if not command:
        raise UsageError("no command given: memwatch -- CMD [ARGS...] (see 'memwatch run --help')")
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
        from .exporter import pushgateway_url_problem

        problem = pushgateway_url_problem(args.pushgateway)
        if problem:
            raise UsageError(f"--pushgateway {problem}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError(f"--metrics-port must be between 0 and 65535 (got {args.metrics_port})")
    # The exporter (prometheus_client, bcrypt) is imported only when asked for: wrapping a
    # job must stay light.
    live = server = writer = None
    try:
        if args.metrics_port is not None:
            from .exporter import LiveRun, MetricsServer, make_registry, run_job_name

            live = LiveRun(run_job_name(args.job, command), args.interval, size=args.size)
            server = MetricsServer(
                make_registry(live.snapshot), args.metrics_address, args.metrics_port
            )
            server.start()  # a port in use fails here, before the command starts
            if not args.quiet:
                _say(f"memwatch: serving live metrics at {server.url}")
        writer = SampleWriter(args.samples) if args.samples else None
        if live is not None:
            from .exporter import fan_out_samples

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
    failed: list[OutputError] = []
    if args.textfile or args.pushgateway:
        from .exporter import push_run, write_run_textfile

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

    def outputs_failed(errors: list[OutputError]) -> int:
        # The measurement is not lost: it goes to stderr even with --quiet.
        _say(format_human(summary))
        for err in errors:
            _say(
                f"memwatch: error: {err} (the command ended with exit status "
                f"{summary.exit_status}; its summary is above)"
            )
        return errors[0].exit_code

    # The history first: a --json that cannot be written must not cost the recorded run.
    if args.job is not None:
        try:
            History(args.history or default_path()).record(summary, args.job)
        except HistoryError as err:
            # Recording is a side effect of --job: the run itself and its status stand.
            summary = dataclasses.replace(
                summary, warnings=(*summary.warnings, f"not recorded in the history: {err}")
            )
    if args.json:
        try:
            write_json(summary, args.json)
        except OutputError as err:
            return outputs_failed([err, *failed])
    if failed:
        return outputs_failed(failed)
    if not args.quiet:
        _say(format_human(summary))
    return summary.exit_status


# The fitting commands import numpy (model.py) when they run, not when memwatch starts:
# wrapping a job with `memwatch run` must stay light.


def _advise(
    args: argparse.Namespace,
    measurements: list[Measurement],
    title: str,
    lower_bounds: Sequence[Measurement] = (),
    refused: list[str] | None = None,
) -> str:
    """Fit, predict at every --at, draw the plot if asked; returns the report to print.

    ``lower_bounds`` are failed runs (a floor, not fitted). With ``refused`` given, a
    target too far out is listed there instead of failing the whole report (a sweep has
    measured too much to print nothing).
    """
    from .errors import ExtrapolationRefused
    from .fitreport import fit_json, format_fit
    from .model import fit, predict
    from .planning import choose_budget, plan

    if not measurements and lower_bounds:
        raise FitError(
            "no run succeeded ("
            + ", ".join(f"size {size_text(m.size)} failed" for m in lower_bounds[:5])
            + "): nothing to fit; fix the job and run again"
        )
    model = fit(measurements, margin=args.margin, lower_bounds=lower_bounds)
    predictions = []
    for size in args.at:
        try:
            predictions.append(predict(model, size, force=args.force))
        except ExtrapolationRefused as err:
            if refused is None:
                raise
            refused.append(str(err))
    try:
        budget = choose_budget(args.budget, machine_memory(), memory_limit())
    except ValueError as err:
        raise UsageError(str(err)) from None
    answers = plan(model, predictions, budget, args.max_size_for, args.force)
    if args.plot:
        from .plot import plot_fit

        plot_fit(model, predictions, args.plot, title=title)
    if args.json:
        return json.dumps(fit_json(model, predictions, answers), indent=2)
    return format_fit(model, predictions, answers)


def _check_fit_outputs(args: argparse.Namespace) -> None:
    """A plot that cannot be drawn (suffix, matplotlib, directory) fails before any work."""
    if args.plot:
        from .plot import check_plot_path

        check_plot_path(args.plot)


def _fit(args: argparse.Namespace) -> int:
    from .fitreport import format_sizes_table, read_runs_csv

    _check_fit_outputs(args)
    measurements = read_runs_csv(args.runs)
    report = _advise(args, measurements, title=os.path.basename(args.runs))
    if not args.json:
        report = format_sizes_table(measurements) + "\n" + report
    print(report)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .fitreport import format_sizes_table
    from .model import Measurement

    _check_fit_outputs(args)
    store = History(args.history or default_path())
    runs = store.runs(args.job)
    if not runs:
        known = store.jobs()
        raise FitError(
            f"no runs recorded for job {args.job!r} in {store.path}"
            + (f" (jobs there: {', '.join(known)})" if known else "")
            + f"; record some with memwatch sweep --job {args.job} or "
            f"memwatch run --job {args.job} --size N -- CMD"
        )
    measurements = [
        Measurement(r.size, r.peak_bytes, r.swap_suspected)
        for r in runs
        if r.size is not None and r.exit_status == 0
    ]
    failed = [
        Measurement(r.size, r.peak_bytes)
        for r in runs
        if r.size is not None and r.exit_status != 0 and r.peak_bytes > 0
    ]
    skipped = len(runs) - len(measurements)
    report = _advise(args, measurements, title=args.job, lower_bounds=failed)
    if not args.json:
        report = format_sizes_table(measurements) + "\n" + report
        if skipped:
            report += f"\n(not fitted: {skipped} recorded run(s) that failed or had no --size)"
    print(report)
    return 0


def _history(args: argparse.Namespace) -> int:
    runs = History(args.history or default_path()).runs(args.job)
    if args.json:
        for r in runs:
            print(json.dumps({**dataclasses.asdict(r), "size": json_number(r.size)}))
        return 0
    if not runs:
        _say("memwatch: no runs recorded" + (f" for job {args.job!r}" if args.job else ""))
        return 0
    print(f"{'id':>5}  {'recorded (UTC)':19}  {'size':>10}  {'peak':>10}  exit  {'time':>8}  job")
    for r in runs:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.recorded_at))
        size = "-" if r.size is None else f"{size_text(r.size)}"
        flag = " (swap suspected)" if r.swap_suspected else ""
        print(
            f"{r.id:>5}  {when:19}  {size:>10}  {human_bytes(r.peak_bytes):>10}  "
            f"{r.exit_status:>4}  {r.duration_s:>7.1f}s  {r.job}{flag}"
        )
    return 0


def _daemon(args: argparse.Namespace) -> int:
    from .daemon import run_daemon  # the exporter's imports only for the daemon

    return run_daemon(args.config, port=args.port)


def _plot(args: argparse.Namespace) -> int:
    from .plot import check_plot_path, plot_samples

    check_plot_path(args.output, "--output")
    samples = read_samples(args.samples)
    plot_samples(samples, args.output, title=os.path.basename(args.samples))
    _say(f"memwatch: wrote {args.output}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from .config import load_config
    from .errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as err:
        for problem in err.problems:  # file:line: first, as compilers do: editors jump there
            _say(problem)
        return err.exit_code
    count = len(config.watch)
    print(f"{args.config}: OK ({count} watch {'entry' if count == 1 else 'entries'})")
    return 0


def _sweep(args: argparse.Namespace, command: list[str]) -> int:
    if not command:
        raise UsageError(
            "no command given: memwatch sweep --sizes 1,2,4 -- CMD ... {size} ... "
            "(see 'memwatch sweep --help')"
        )
    substitute(command, "")  # a missing {size} is a usage error before anything runs
    _check_fit_outputs(args)
    largest = max(float(s) for s in args.sizes)
    for at in args.at:
        if at / largest > REFUSE_EXTRAPOLATION and not args.force:
            raise UsageError(
                f"--at {size_text(at)} is {at / largest:.1f}x the largest size in --sizes "
                f"({size_text(largest)}); "
                f"beyond {REFUSE_EXTRAPOLATION:g}x memwatch will not guess: add a larger "
                "size, or pass --force"
            )
    job = args.job or " ".join(command)
    store = History(args.history or default_path())
    history_errors: list[str] = []

    def step(index: int, total: int, rep: int) -> str:
        return "memwatch: sweep [warm-up]" if rep == 0 else f"memwatch: sweep [{index}/{total}]"

    def before(index: int, total: int, size: str, rep: int) -> None:
        again = f", repeat {rep}/{args.repeat}" if args.repeat > 1 else ""
        note = " (not fitted: loads the job's libraries into the page cache)" if rep == 0 else ""
        _say(f"{step(index, total, rep)} size {size}{again}{note} ...")

    last: list[SweepRun] = []  # the last run, warm-up included: did a signal stop it?

    def after(index: int, total: int, run: SweepRun) -> None:
        last[:] = [run]
        s = run.summary
        _say(
            f"{step(index, total, run.repeat)} size {run.size_text}: peak "
            f"{human_bytes(s.peak.total_bytes)} ({s.peak.source}) in {s.duration_s:.1f} s"
            + ("" if run.ok else f"; FAILED: {describe_ending(s)}")
        )
        if run.repeat == 0:
            return
        try:
            store.record(s, job)
        except HistoryError as err:
            if not history_errors:
                _say(f"memwatch: warning: not recorded in the history: {err}")
            history_errors.append(str(err))

    # stdout carries only the report or the JSON; the job's own output goes to stderr.
    runs = sweep(
        command,
        args.sizes,
        args.repeat,
        job=job,
        warmup=not args.no_warmup,
        before_run=before,
        on_run=after,
        interval_s=args.interval,
        pss=args.pss,
        use_cgroup=not args.no_cgroup,
        backend=args.backend,
        forward_signals=True,
        stdin=subprocess.DEVNULL,
        stdout=2,  # the job's stdout joins memwatch's stderr
    )
    failed = [r for r in runs if not r.ok]
    notes = [
        f"size {r.size_text} (repeat {r.repeat}) failed: {describe_ending(r.summary)}; its peak "
        f"{human_bytes(r.summary.peak.total_bytes)} is only a lower bound and is not fitted"
        for r in failed
    ]
    from .fitreport import format_sizes_table
    from .model import Measurement

    # A failed run's peak is only a lower bound: only successful runs are fitted.
    measured = [
        Measurement(r.size, r.summary.peak.total_bytes, r.summary.swap_suspected)
        for r in runs
        if r.ok
    ]
    if not args.json:
        print(format_sizes_table(measured) if measured else "no run succeeded")
        for note in notes:
            print(f"warning: {note}")
    stopped = last[0].stopping_signal if last else None
    if stopped is not None:
        _say(f"memwatch: sweep stopped after {len(runs)} run(s); they are in the history")
        return 128 + stopped
    floors = [Measurement(r.size, r.summary.peak.total_bytes) for r in failed]
    refused: list[str] = []
    report = _advise(args, measured, title=job, lower_bounds=floors, refused=refused)
    if args.json:
        doc = json.loads(report)
        doc["failed_runs"] = [
            {"size": json_number(r.size), "repeat": r.repeat, "exit_status": r.summary.exit_status}
            for r in failed
        ]
        doc["refused"] = refused
        report = json.dumps(doc, indent=2)
    else:
        report += "".join(f"\nerror: {message}" for message in refused)
    print(report)
    if not history_errors:
        _say(f"memwatch: recorded as job {job!r} in {store.path}")
    return 1 if failed or history_errors or refused else 0
