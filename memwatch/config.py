"""The daemon's YAML watch list -> validated, frozen dataclasses.

Errors name the file, the line, the key path and the value, as
``memwatch.yaml:12: watch[2].interval: must be > 0 (got -1)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev dependencies

from .errors import ConfigError
from .records import is_url
from .report import parse_duration

DEFAULT_LISTEN_ADDRESS = "127.0.0.1"  # loopback unless configured otherwise
DEFAULT_PORT = 9793
DEFAULT_INTERVAL_S = 1.0


class Match(Protocol):
    def group(self, index: int, /) -> str | None: ...


class Regex(Protocol):
    """A compiled pattern: RE2's, as the config makes them (Python's re works too)."""

    @property
    def pattern(self) -> str: ...

    @property
    def groups(self) -> int: ...

    def search(self, text: str, /) -> Match | None: ...


@dataclass(frozen=True)
class Selector:
    """Which processes a watch entry selects; every given field must match (AND)."""

    pid: int | None = None
    pidfile: str | None = None  # a file holding a pid, read at every pass
    # An absolute path: the executable itself; else its basename or comm (/proc/PID/comm,
    # 15 chars), which any user can give a process of theirs.
    name: str | None = None
    uid: int | None = None  # the real user id the process runs as
    cmdline: Regex | None = None  # searched in the command line joined by spaces
    cgroup: str | None = None  # every process in this cgroup (path as in /proc/PID/cgroup)
    systemd_unit: str | None = None  # every process of this unit, e.g. "postgresql.service"


@dataclass(frozen=True)
class WatchEntry:
    """One job to watch: its name becomes the ``job`` label."""

    name: str
    selector: Selector
    children: bool = True  # the selected processes' descendants belong to the job too
    interval_s: float = DEFAULT_INTERVAL_S
    pss: bool = False
    # A regex with one group that reads the job's input size from its command line, so its
    # predicted peak (from the history's runs of the same job name) is exported too.
    size_from_cmdline: Regex | None = None
    sizes: tuple[float, ...] = ()  # sizes whose recommended memory is always exported
    line: int = 0  # where the entry starts in the file, for messages


@dataclass(frozen=True)
class WebConfig:
    """Prometheus exporter-toolkit web config: TLS and basic auth (bcrypt hashes)."""

    cert_file: str | None = None
    key_file: str | None = None
    # (user, bcrypt hash). Out of the repr: a hash is a secret (it can be cracked offline).
    basic_auth_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True)
class Config:
    path: str
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    port: int = DEFAULT_PORT
    interval_s: float = DEFAULT_INTERVAL_S
    history_path: str | None = None  # None: the default history (memwatch.history)
    web: WebConfig = field(default_factory=WebConfig)
    watch: tuple[WatchEntry, ...] = ()
    # What works now but will not for long, one line each as problems are written.
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Loading and validation. The YAML is composed into nodes (not loaded into dicts) so that
# every value still knows its line; every problem is collected before anything is raised.

MIN_INTERVAL_S = 0.001  # as `memwatch run --interval`
MAX_INTERVAL_S = 3600.0
MAX_PID = 4194304  # PID_MAX_LIMIT on 64-bit Linux
# A 10 MB YAML file took 12 s and 1.5 GB to load, all of it holding the daemon's loop at a
# reload. 256 KiB (about 3500 watch entries) loads in about 0.7 s on a loaded 2-core machine.
MAX_CONFIG_BYTES = 256 << 10

TOP_KEYS = ("listen_address", "port", "interval", "history", "web", "web_config_file", "watch")
SELECTOR_KEYS = ("pid", "pidfile", "process_name", "user", "cmdline", "cgroup", "systemd_unit")
ENTRY_KEYS = (
    "name",
    *SELECTOR_KEYS,
    "children",
    "interval",
    "pss",
    "size_from_cmdline",
    "sizes",
)
WEB_KEYS = ("tls_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file")

# Words users bring from other tools (process-exporter, systemd) -> the key memwatch uses.
_ALIASES = {
    "exe": "process_name",
    "comm": "process_name",
    "unit": "systemd_unit",
    "job": "name",
    "regex": "cmdline",
}
# Exporter-toolkit settings memwatch does not implement. Rejected rather than ignored: a
# silently ignored client_auth_type would leave the endpoint open while looking closed.
_NOT_SUPPORTED = "an exporter-toolkit setting memwatch does not support (it supports: {known})"
_WEB_UNSUPPORTED = dict.fromkeys(("http_server_config", "rate_limit"), _NOT_SUPPORTED)
_TLS_UNSUPPORTED = dict.fromkeys(
    (
        "cert",
        "key",
        "client_auth_type",
        "client_ca_file",
        "client_ca",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    ),
    _NOT_SUPPORTED,
)

_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_NOT_BCRYPT = "a value that is not a bcrypt hash"  # the value itself is never shown
# Prometheus-style durations ("500ms", "15s", "1m30s") besides plain numbers of seconds.
# Labels of at most 63 characters (RFC 1035): getaddrinfo raises UnicodeError on longer.
_HOST_NAME = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_-]{1,63})*\.?"
)
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+")
_UNITS_WITH_PROCESSES = ("service", "scope", "slice", "socket", "mount", "swap")
_UNITS_WITHOUT = ("target", "timer", "path", "device", "automount")
_SHOW_MAX = 80

# libyaml's parser when PyYAML was built with it: composes ~9x faster than the pure-Python
# one (0.16 s against 1.47 s for 4000 watch entries), so a reload holds the loop less. A
# file it refuses is composed again by the pure-Python one, whose messages say more.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"


def load_config(path: str) -> Config:
    """Read and validate the config file at ``path``; ConfigError lists every problem."""
    return parse_config(_read_text(path), path)


def parse_config(text: str, path: str) -> Config:
    """Validate config ``text`` read from ``path`` (named in messages; relative paths in the
    config are taken from its directory). Raises ConfigError listing every problem."""
    problems = _Problems(path, [])
    root = _compose(text, problems)
    config = _Reader(problems, os.path.dirname(path)).config(root)
    if problems.items:
        raise ConfigError(problems.lines())
    return dataclasses.replace(config, warnings=tuple(problems.lines(problems.warnings)))


def _read_text(path: str) -> str:
    try:
        # O_NONBLOCK: opening a FIFO would wait for a writer, and the daemon's loop with it.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(
                    [f"{path}: cannot read: not a regular file; give the config file itself"]
                )
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {err.strerror or err}"]) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                f"{path}: larger than {MAX_CONFIG_BYTES >> 10} KiB, the most memwatch reads "
                "(about 3500 watch entries); select processes by cgroup or systemd_unit "
                "instead of one entry each"
            ]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError([f"{path}:{line}: not UTF-8 text ({err.reason})"]) from None


_Item = tuple[int, int, str]  # (file rank, line, message): sorts by file, then line


class _Problems:
    """The problems (and warnings) of one file; files read on the way (the web config)
    share the lists."""

    def __init__(
        self, path: str, items: list[_Item], rank: int = 0, warnings: list[_Item] | None = None
    ) -> None:
        self.path = path
        self.items = items
        self.rank = rank  # sorts this file's problems after those of the files before it
        self.warnings: list[_Item] = [] if warnings is None else warnings

    def add(self, line: int, where: str, problem: str, got: str | None = None) -> None:
        """Record ``problem`` at 1-based ``line`` under the key path ``where``."""
        text = f"{self.path}:{line}: {where}: {problem}"
        got_text = f" (got {got})" if got is not None else ""
        self.items.append((self.rank, line, _redact(text + got_text)))

    def warn(self, line: int, where: str, warning: str) -> None:
        """Record something that works but will not for long (an expiring certificate)."""
        self.warnings.append((self.rank, line, f"{self.path}:{line}: {where}: warning: {warning}"))

    def syntax(self, line: int, problem: str) -> None:
        text = f"{self.path}:{line}: YAML syntax: {problem}"
        self.items.append((self.rank, line, _redact(text)))

    def other_file(self, path: str) -> _Problems:
        return _Problems(path, self.items, self.rank + 1, self.warnings)

    def lines(self, items: list[_Item] | None = None) -> list[str]:
        chosen = self.items if items is None else items
        return [text for _, _, text in sorted(chosen, key=lambda item: item[:2])]


# Anything shaped like a bcrypt hash, in any key or value, even cut short: a hash put under
# the wrong key must not be echoed back (it can be cracked offline).
_HASH_LIKE = re.compile(r"\$2[aby]?\$[0-9]{1,2}\$[./A-Za-z0-9]*")


def _redact(text: str) -> str:
    return _HASH_LIKE.sub("<a bcrypt hash, not shown>", text)


def _compose(text: str, problems: _Problems) -> Any:
    """The YAML node tree of ``text``, or None (empty, or a syntax error, recorded)."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, RecursionError):
            pass
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        # Built from the parts, not str(err): that quotes the offending source line,
        # which may hold a password hash.
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "invalid YAML"
        if err.context and err.problem and err.context_mark is not None:
            problem += f" ({err.context} at line {err.context_mark.line + 1})"
        elif mark is not None:
            problem += f" (column {mark.column + 1})"
        problems.syntax(mark.line + 1 if mark is not None else 1, problem)
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        char = err.character if isinstance(err.character, int) else ord(err.character[:1] or "?")
        problems.syntax(line, f"character #x{char:04x} is not allowed in YAML")
    except yaml.YAMLError as err:  # nothing else is raised by compose; never a traceback
        problems.syntax(1, type(err).__name__)
    except RecursionError:
        problems.syntax(1, "nested too deeply")
    return None


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _kind(node: Any) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "null"
    return "a string" if node.tag == _STR else "a value"


def _show(node: Any) -> str:
    """A value as the user wrote it: strings quoted, numbers and booleans as typed."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        return _kind(node)
    text: str = node.value
    if node.tag == _STR:  # quoted, control characters escaped, backslashes left alone
        text = '"' + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + '"'
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _suggest(key: str, known: Sequence[str]) -> str:
    if key in _ALIASES and _ALIASES[key] in known:
        return f"unknown key; did you mean '{_ALIASES[key]}'?"
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key (known keys: {', '.join(known)})"


class _Reader:
    """Walks the node tree of one file, turning nodes into values and problems."""

    def __init__(self, problems: _Problems, base_dir: str) -> None:
        self.problems = problems
        self.base_dir = base_dir  # relative paths in the file are taken from here
        self.constructor = yaml.SafeLoader("")  # builds scalars; its stream is never read
        # id(value node) -> line of its key: a block mapping or list value starts a line
        # below its key, and "tls_server_config: cert_file missing" belongs on the key's.
        self.key_lines: dict[int, int] = {}

    def add(self, at: Any, where: str, problem: str, got: str | None = None) -> None:
        """Record a problem; one about a whole mapping or list names the line of its key."""
        line = at if isinstance(at, int) else self.key_lines.get(id(at), _line(at))
        self.problems.add(line, where, problem, got)

    # -- structure -------------------------------------------------------------------

    def pairs(self, node: Any, where: str, secret: bool = False) -> Iterator[tuple[str, Any, Any]]:
        """(key, key node, value node) of a mapping; duplicate and non-name keys reported."""
        explicit = {id(key_node) for key_node, _ in node.value}
        try:
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<: *defaults)
        except yaml.MarkedYAMLError as err:
            self.add(node, where or "top level", f"bad merge key: {err.problem}")
        merged: dict[str, tuple[Any, Any]] = {}  # keys from <<: the last wins, silently
        written: dict[str, tuple[Any, Any]] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                what = "key" if secret else f"key {_show(key_node)}"
                self.add(line, where or "top level", f"{what} is not a name")
                continue
            key: str = key_node.value
            if id(key_node) not in explicit:
                merged[key] = key_node, value_node
            elif key in written:
                first = _line(written[key][0])
                self.add(line, _key(where, key), f"duplicate key (first at line {first})")
            else:
                written[key] = key_node, value_node
        # Keys written in the mapping itself override merged ones, as YAML says.
        pairs = {**merged, **written}
        for key, (key_node, value_node) in pairs.items():
            if isinstance(value_node, (yaml.MappingNode, yaml.SequenceNode)):
                self.key_lines[id(value_node)] = _line(key_node)
            yield key, key_node, value_node

    def fields(
        self,
        node: Any,
        where: str,
        known: Sequence[str],
        what: str,
        unsupported: Mapping[str, str] | None = None,
        secret: bool = False,
    ) -> dict[str, Any] | None:
        """The value nodes of a mapping's known keys; unknown keys reported."""
        if not isinstance(node, yaml.MappingNode):
            got = _kind(node) if secret else _show(node)
            self.add(node, where or "top level", f"must be {what}", got)
            return None
        found: dict[str, Any] = {}
        for key, key_node, value_node in self.pairs(node, where, secret):
            if key in known:
                found[key] = value_node
            elif unsupported and key in unsupported:
                message = unsupported[key].format(known=", ".join(known))
                self.add(key_node, _key(where, key), message)
            else:
                self.add(key_node, _key(where, key), _suggest(key, known))
        return found

    # -- scalars: each returns None after recording why the value cannot be used --------

    def scalar(self, node: Any, where: str, secret: bool = False) -> object:
        if not isinstance(node, yaml.ScalarNode):
            return node  # a mapping or list: the caller's type check names it
        try:
            return self.constructor.construct_object(node)
        except yaml.MarkedYAMLError as err:
            got = _kind(node) if secret else _show(node)
            self.add(node, where, f"unusable YAML value: {err.problem}", got)
            return node

    def string(self, node: Any, where: str, what: str = "a string") -> str | None:
        value = self.scalar(node, where)
        if isinstance(value, str) and value.strip():
            return value
        self.add(node, where, f"must be {what}", _show(node))
        return None

    def boolean(self, node: Any, where: str) -> bool | None:
        value = self.scalar(node, where)
        if isinstance(value, bool):
            return value
        self.add(node, where, "must be true or false", _show(node))
        return None

    def integer(self, node: Any, where: str, low: int, high: int, what: str) -> int | None:
        value = self.scalar(node, where)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.add(node, where, f"must be {what} between {low} and {high}", _show(node))
        return None

    def number(self, node: Any, where: str) -> float | None:
        """A finite number >= 0; "1e6" too (YAML 1.1 reads 1e6 without a dot as a string)."""
        value = self.scalar(node, where)
        number = _as_float(value)
        if number is not None and math.isfinite(number) and number >= 0:
            return number
        self.add(node, where, "must be a number >= 0", _show(node))
        return None

    def seconds(self, node: Any, where: str) -> float | None:
        value = self.scalar(node, where)
        number = _as_float(value)
        if number is None and isinstance(value, str):
            number = _duration_s(value)
        if number is None or math.isnan(number):
            problem = "must be a number of seconds or a duration like 500ms, 15s, 1m"
        elif number <= 0:
            problem = "must be > 0"
        elif number < MIN_INTERVAL_S:
            problem = f"must be at least {MIN_INTERVAL_S} s"
        elif number > MAX_INTERVAL_S:
            problem = f"must be at most {MAX_INTERVAL_S:g} s (one hour)"
        else:
            return number
        self.add(node, where, problem, _show(node))
        return None

    def regex(self, node: Any, where: str, groups: int | None = None) -> Regex | None:
        text = self.string(node, where, "a regular expression")
        if text is None:
            return None
        try:
            pattern = compile_regex(text)
        except ValueError as err:
            self.add(node, where, str(err), _show(node))
            return None
        if groups is not None and pattern.groups != groups:
            self.add(
                node,
                where,
                f"must have exactly {groups} capture group around the size, not "
                f"{pattern.groups} (write other groups as (?:...))",
                _show(node),
            )
            return None
        return pattern

    def path(self, node: Any, where: str) -> str | None:
        """A path; a relative one is taken from the directory of the file it is in."""
        text = self.string(node, where, "a path")
        return None if text is None else os.path.join(self.base_dir, text)

    def readable(self, node: Any, where: str) -> str | None:
        path = self.path(node, where)
        if path is None:
            return None
        try:
            # Not open() first: opening a FIFO would wait for a writer.
            if not stat.S_ISREG(os.stat(path).st_mode):
                self.add(node, where, "not a regular file", _show(node))
                return None
            with open(path, "rb"):
                pass
        except OSError as err:
            self.add(node, where, f"cannot read: {err.strerror or err}", _show(node))
            return None
        return path

    # -- sections ----------------------------------------------------------------------

    def config(self, root: Any) -> Config:
        path = self.problems.path
        if root is None:
            if not self.problems.items:  # an empty file (a syntax error is reported already)
                self.add(1, "watch", "missing: list at least one process to watch")
            return Config(path)
        top = self.fields(root, "", TOP_KEYS, "a mapping of settings (listen_address, watch, ...)")
        if top is None:
            return Config(path)
        listen = self.listen_address(top["listen_address"]) if "listen_address" in top else None
        port = None
        if "port" in top:
            port = self.integer(top["port"], "port", 1, 65535, "a port number")
        interval = self.seconds(top["interval"], "interval") if "interval" in top else None
        history = None
        if "history" in top and top["history"].tag != _NULL:
            text = self.string(top["history"], "history", "a path or a postgresql:// URL")
            # A URL is a shared history; a relative path is taken from this file's directory.
            if text is not None:
                history = text if is_url(text) else os.path.join(self.base_dir, text)
        web = self.web_settings(top)
        if "watch" in top:
            watch = self.watch(top["watch"], interval or DEFAULT_INTERVAL_S)
        else:
            self.add(root, "watch", "missing: list at least one process to watch")
            watch = ()
        return Config(
            path,
            listen_address=listen or DEFAULT_LISTEN_ADDRESS,
            port=port or DEFAULT_PORT,
            interval_s=interval or DEFAULT_INTERVAL_S,
            history_path=history,
            web=web,
            watch=watch,
        )

    def listen_address(self, node: Any) -> str | None:
        where = "listen_address"
        text = self.string(node, where, "an IP address or host name")
        if text is None:
            return None
        try:
            ipaddress.ip_address(text)
            return text
        except ValueError:
            pass
        if re.fullmatch(r"[^:\s]+:\d+|\[.*\]:\d+", text):
            problem = "must be an address without a port: the port goes in 'port'"
        elif text.startswith("["):
            problem = "must be an IPv6 address without brackets"
        elif not _HOST_NAME.fullmatch(text):
            problem = "must be an IP address or host name (0.0.0.0 or :: for every interface)"
        else:
            return text
        self.add(node, where, problem, _show(node))
        return None

    def web_settings(self, top: Mapping[str, Any]) -> WebConfig:
        if "web_config_file" not in top:
            node = top.get("web")
            return WebConfig() if node is None else self.web(node, "web")
        node = top["web_config_file"]
        if "web" in top:
            self.add(
                node, "web_config_file", "give either web_config_file or a web section, not both"
            )
            return WebConfig()
        path = self.path(node, "web_config_file")
        if path is None:
            return WebConfig()
        try:
            text = _read_text(path)
        except ConfigError as err:
            reason = err.problems[0].removeprefix(f"{path}")
            self.add(node, "web_config_file", reason.lstrip(":0123456789 "), _show(node))
            return WebConfig()
        problems = self.problems.other_file(path)
        root = _compose(text, problems)
        if root is None or root.tag == _NULL:
            return WebConfig()  # an empty web config: plain HTTP, no auth, as exporters do
        return _Reader(problems, os.path.dirname(path)).web(root, "")

    def web(self, node: Any, where: str) -> WebConfig:
        """Exporter-toolkit web config (inline under ``web``, or a whole web config file)."""
        if node.tag == _NULL:
            return WebConfig()
        unsupported = _WEB_UNSUPPORTED
        if where:
            unsupported = {
                **unsupported,
                "web_config_file": "belongs at the top level, not under web",
            }
        found = self.fields(
            node,
            where,
            WEB_KEYS,
            "a web config mapping (tls_server_config, basic_auth_users)",
            unsupported,
            secret=True,
        )
        if found is None:
            return WebConfig()
        cert_file, key_file = self.tls(found.get("tls_server_config"), where)
        users = self.users(found.get("basic_auth_users"), _key(where, "basic_auth_users"))
        return WebConfig(cert_file=cert_file, key_file=key_file, basic_auth_users=users)

    def tls(self, node: Any, where: str) -> tuple[str | None, str | None]:
        where = _key(where, "tls_server_config")
        if node is None or node.tag == _NULL:
            return None, None
        found = self.fields(
            node, where, TLS_KEYS, "a mapping with cert_file and key_file", _TLS_UNSUPPORTED
        )
        if not found:
            return None, None
        paths = {key: self.readable(found[key], _key(where, key)) for key in found}
        for missing in (k for k in TLS_KEYS if k not in found):
            self.add(node, where, f"{missing} missing: TLS needs both cert_file and key_file")
        cert_file, key_file = paths.get("cert_file"), paths.get("key_file")
        if cert_file is None or key_file is None:
            return None, None
        problem = _tls_problem(cert_file, key_file)
        if problem:
            self.add(node, where, problem)
            return None, None
        expiry = _expiry_warning(cert_file, time.time())
        if expiry:
            self.problems.warn(_line(found["cert_file"]), _key(where, "cert_file"), expiry)
        return cert_file, key_file

    def users(self, node: Any, where: str) -> tuple[tuple[str, str], ...]:
        if node is None or node.tag == _NULL:
            return ()
        if not isinstance(node, yaml.MappingNode):
            self.add(node, where, "must be a mapping of user: bcrypt hash", _kind(node))
            return ()
        users = []
        for user, key_node, value_node in self.pairs(node, where, secret=True):
            if not user or ":" in user:
                # Not shown: "ops:$2y$..." is a whole htpasswd line, hash included.
                self.add(key_node, where, "a user name must be non-empty, without ':'", "a key")
                continue
            value = self.scalar(value_node, _key(where, user), secret=True)
            if not (isinstance(value, str) and _BCRYPT.fullmatch(value)):
                self.add(
                    value_node,
                    _key(where, user),
                    "must be a bcrypt hash ($2y$, $2b$ or $2a$, cost, 53 characters), e.g. "
                    f"from: htpasswd -nBC 12 {user} | cut -d: -f2",
                    _NOT_BCRYPT,
                )
                continue
            users.append((user, value))
        return tuple(users)

    def watch(self, node: Any, interval_s: float) -> tuple[WatchEntry, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.add(
                node, "watch", "must list at least one process to watch (- name: ...)", _show(node)
            )
            return ()
        names: dict[str, str] = {}  # name -> where its first entry is, for duplicates
        entries = (
            self.entry(item, f"watch[{i}]", interval_s, names) for i, item in enumerate(node.value)
        )
        return tuple(entry for entry in entries if entry is not None)

    def entry(
        self, node: Any, where: str, interval_s: float, names: dict[str, str]
    ) -> WatchEntry | None:
        found = self.fields(node, where, ENTRY_KEYS, "a mapping with a name and a selector")
        if found is None:
            return None
        ok = True
        name = None
        if "name" in found:
            name = self.job_name(found["name"], _key(where, "name"))
            if name is not None and name in names:
                self.add(
                    found["name"],
                    _key(where, "name"),
                    f"already the name of {names[name]}: names must be unique",
                    _show(found["name"]),
                )
                name = None
            elif name is not None:
                names[name] = f"{where} (line {_line(node)})"
        else:
            self.add(node, where, "missing name (the job label of this entry)")
        selector = self.selector(found, where)
        if selector is None:
            if not any(key in found for key in SELECTOR_KEYS):
                self.add(
                    node, where, f"no selector: give at least one of {', '.join(SELECTOR_KEYS)}"
                )
            ok = False

        def optional(key: str, read: Any) -> Any:
            nonlocal ok
            if key not in found:
                return None
            value = read(found[key], _key(where, key))
            ok = ok and value is not None
            return value

        children = optional("children", self.boolean)
        interval = optional("interval", self.seconds)
        pss = optional("pss", self.boolean)
        size_re = optional("size_from_cmdline", lambda n, w: self.regex(n, w, groups=1))
        sizes = self.sizes(found["sizes"], _key(where, "sizes")) if "sizes" in found else ()
        if name is None or selector is None or sizes is None or not ok:
            return None
        return WatchEntry(
            name=name,
            selector=selector,
            children=True if children is None else children,
            interval_s=interval or interval_s,
            pss=bool(pss),
            size_from_cmdline=size_re,
            sizes=sizes,
            line=_line(node),
        )

    def job_name(self, node: Any, where: str) -> str | None:
        # Any UTF-8 string is a valid Prometheus label value; empty means "no label" to
        # Prometheus, and control characters make unreadable dashboards.
        name = self.string(node, where, "a non-empty string (the job label)")
        if name is None:
            return None
        if any(ord(c) < 32 or ord(c) == 127 for c in name) or name != name.strip():
            problem = "must not have control characters or spaces at either end"
        elif any(0xD800 <= ord(c) <= 0xDFFF for c in name):
            problem = "must be valid UTF-8"
        else:
            return name
        self.add(node, where, problem, _show(node))
        return None

    def selector(self, found: Mapping[str, Any], where: str) -> Selector | None:
        values: dict[str, Any] = {}
        for key in SELECTOR_KEYS:
            if key in found:
                read = getattr(self, f"select_{key}")
                values[key] = read(found[key], _key(where, key))
        if not values or any(v is None for v in values.values()):
            return None
        return Selector(
            pid=values.get("pid"),
            pidfile=values.get("pidfile"),
            name=values.get("process_name"),
            uid=values.get("user"),
            cmdline=values.get("cmdline"),
            cgroup=values.get("cgroup"),
            systemd_unit=values.get("systemd_unit"),
        )

    def select_pid(self, node: Any, where: str) -> int | None:
        return self.integer(node, where, 1, MAX_PID, "a process id")

    def select_pidfile(self, node: Any, where: str) -> str | None:
        return self.absolute(node, where, "an absolute path to a file holding a pid")

    def select_process_name(self, node: Any, where: str) -> str | None:
        name = self.string(node, where, "a process name (executable basename or comm)")
        if name is not None and "/" in name and not os.path.isabs(name):
            self.add(
                node,
                where,
                "a process name or the executable's absolute path (/usr/sbin/nginx)",
                _show(node),
            )
            return None
        return name

    def select_user(self, node: Any, where: str) -> int | None:
        """A user name or a numeric uid; a name must exist here (it is resolved once)."""
        value = self.scalar(node, where)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32 - 1:
            return value
        if isinstance(value, str) and value.strip():
            import pwd

            try:
                return pwd.getpwnam(value).pw_uid
            except KeyError:
                problem = "no such user on this machine (give a user name or a numeric uid)"
        else:
            problem = "must be a user name or a numeric uid"
        self.add(node, where, problem, _show(node))
        return None

    def select_cmdline(self, node: Any, where: str) -> Regex | None:
        return self.regex(node, where)

    def select_cgroup(self, node: Any, where: str) -> str | None:
        path = self.absolute(node, where, "a cgroup path as in /proc/PID/cgroup")
        if path is not None and path.startswith("/sys/fs/cgroup"):
            self.add(
                node,
                where,
                "give the path as /proc/PID/cgroup shows it, without the /sys/fs/cgroup mount "
                "(e.g. /system.slice/nginx.service)",
                _show(node),
            )
            return None
        return path

    def select_systemd_unit(self, node: Any, where: str) -> str | None:
        unit = self.string(node, where, "a systemd unit name")
        if unit is None:
            return None
        base, _, kind = unit.rpartition(".")
        if not _UNIT_NAME.fullmatch(unit) or len(unit) > 255:
            problem = "not a systemd unit name"
        elif kind in _UNITS_WITHOUT:
            problem = f"a .{kind} unit has no processes of its own: give the unit it starts"
        elif not base or kind not in _UNITS_WITH_PROCESSES:
            problem = "must name the unit with its type, e.g. postgresql.service"
        elif base.endswith("@"):
            problem = "a template unit: give an instance, e.g. name@instance.service"
        else:
            return unit
        self.add(node, where, problem, _show(node))
        return None

    def absolute(self, node: Any, where: str, what: str) -> str | None:
        text = self.string(node, where, what)
        if text is not None and not text.startswith("/"):
            self.add(node, where, f"must be {what} (starting with /)", _show(node))
            return None
        return text

    def sizes(self, node: Any, where: str) -> tuple[float, ...] | None:
        if node.tag == _NULL:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.add(node, where, "must be a list of input sizes, e.g. [1e6, 1e7]", _show(node))
            return None
        values = [self.number(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        if any(v is None for v in values):
            return None
        return tuple(dict.fromkeys(v for v in values if v is not None))


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr itself
    return options


_RE2_OPTIONS = _re2_options()


def compile_regex(text: str) -> Regex:
    """Compile ``text`` with RE2, whose matching takes time linear in the text.

    Python's re backtracks: ``(a+)+$`` against a command line any local user can set took
    the daemon's passes to 20 s and more. RE2 (as Prometheus uses) refuses what it cannot
    run in linear time, backreferences and lookarounds; ValueError says why.
    """
    try:
        return re2.compile(text, _RE2_OPTIONS)  # type: ignore[no-any-return]
    except re2.error as err:
        reason = err.args[0] if err.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
    except UnicodeError:  # lone surrogates: not from a YAML file, which is UTF-8
        reason = "not valid UTF-8"
    raise ValueError(
        f"not a regular expression RE2 can run: {reason} (RE2 syntax, as in Prometheus: "
        "no backreferences, no lookarounds)"
    )


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _duration_s(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    return b""


CERT_EXPIRY_WARNING_S = 14 * 86400  # certbot renews 30 days ahead; 14 left means it failed


def _expiry_warning(cert_file: str, now: float) -> str | None:
    """Why the certificate will soon stop working (expired, or expiring within 14 days)."""
    import ssl

    try:
        # The standard library decodes a certificate only through this test hook; without
        # it (another Python) there is no warning, and the TLS check above still holds.
        not_after = ssl._ssl._test_decode_cert(cert_file)["notAfter"]  # type: ignore[attr-defined]
        expires = ssl.cert_time_to_seconds(not_after)
    except (AttributeError, KeyError, ValueError, OSError, ssl.SSLError):
        return None
    day = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
    if expires <= now:
        return f"the certificate expired on {day}: clients will refuse it; renew it"
    if expires - now < CERT_EXPIRY_WARNING_S:
        return f"the certificate expires on {day}, in {(expires - now) / 86400:.0f} day(s)"
    return None


def _tls_problem(cert_file: str, key_file: str) -> str | None:
    """Why the two files are not a PEM certificate and its unencrypted key, or None."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except ssl.SSLError as err:
        try:
            with open(key_file, "rb") as f:
                encrypted = b"ENCRYPTED" in f.read(1 << 16)
        except OSError:
            encrypted = False
        if encrypted:
            return "key_file is encrypted: memwatch needs it unencrypted (readable by it alone)"
        reason = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(err))
        return (
            "cert_file and key_file must be a PEM certificate and its unencrypted private "
            f"key: {reason}"
        )
    except OSError as err:
        return f"cannot load cert_file and key_file: {err.strerror or err}"
    return None
