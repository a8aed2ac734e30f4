"""The daemon's YAML watch list -> validated, frozen dataclasses.

Errors name the file, the line, the key path and the value, as
``memwatch.yaml:12: watch[2].interval: must be > 0 (got -1)``. Reading YAML values is
``yamlvalues``; the web config (TLS and basic auth) is ``webconfig``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev dependencies

from .errors import ConfigError
from .limits import MAX_PID
from .records import is_url
from .webconfig import WebConfig as WebConfig  # re-exported: Config.web's type, named here
from .webconfig import read_web_settings
from .yamlvalues import (
    NULL_TAG,
    Problems,
    Regex,
    ValueReader,
    compose,
    join_key,
    node_line,
    read_text,
    show,
)

DEFAULT_LISTEN_ADDRESS = "127.0.0.1"  # loopback unless configured otherwise
DEFAULT_PORT = 9793
DEFAULT_INTERVAL_S = 1.0


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
# Labels of at most 63 characters (RFC 1035): getaddrinfo raises UnicodeError on longer.
_HOST_NAME = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_-]{1,63})*\.?"
)
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+")
_UNITS_WITH_PROCESSES = ("service", "scope", "slice", "socket", "mount", "swap")
_UNITS_WITHOUT = ("target", "timer", "path", "device", "automount")


def load_config(path: str) -> Config:
    """Read and validate the config file at ``path``; ConfigError lists every problem."""
    return parse_config(read_text(path), path)


def parse_config(text: str, path: str) -> Config:
    """Validate config ``text`` read from ``path`` (named in messages; relative paths in the
    config are taken from its directory). Raises ConfigError listing every problem."""
    problems = Problems(path, [])
    root = compose(text, problems)
    config = _Reader(problems, os.path.dirname(path)).config(root)
    if problems.items:
        raise ConfigError(problems.lines())
    return dataclasses.replace(config, warnings=tuple(problems.lines(problems.warnings)))


class _Reader(ValueReader):
    """Reads the top level and the watch list; the web config is ``webconfig``'s."""

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
        if "history" in top and top["history"].tag != NULL_TAG:
            text = self.string(top["history"], "history", "a path or a postgresql:// URL")
            # A URL is a shared history; a relative path is taken from this file's directory.
            if text is not None:
                history = text if is_url(text) else os.path.join(self.base_dir, text)
        web = read_web_settings(self, top)
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
        self.add(node, where, problem, show(node))
        return None

    def watch(self, node: Any, interval_s: float) -> tuple[WatchEntry, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.add(
                node, "watch", "must list at least one process to watch (- name: ...)", show(node)
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
            name = self.job_name(found["name"], join_key(where, "name"))
            if name is not None and name in names:
                self.add(
                    found["name"],
                    join_key(where, "name"),
                    f"already the name of {names[name]}: names must be unique",
                    show(found["name"]),
                )
                name = None
            elif name is not None:
                names[name] = f"{where} (line {node_line(node)})"
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
            value = read(found[key], join_key(where, key))
            ok = ok and value is not None
            return value

        children = optional("children", self.boolean)
        interval = optional("interval", self.seconds)
        pss = optional("pss", self.boolean)
        size_re = optional("size_from_cmdline", lambda n, w: self.regex(n, w, groups=1))
        sizes = self.sizes(found["sizes"], join_key(where, "sizes")) if "sizes" in found else ()
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
            line=node_line(node),
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
        self.add(node, where, problem, show(node))
        return None

    def selector(self, found: Mapping[str, Any], where: str) -> Selector | None:
        values: dict[str, Any] = {}
        for key in SELECTOR_KEYS:
            if key in found:
                read = getattr(self, f"select_{key}")
                values[key] = read(found[key], join_key(where, key))
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
                show(node),
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
        self.add(node, where, problem, show(node))
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
                show(node),
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
        self.add(node, where, problem, show(node))
        return None

    def absolute(self, node: Any, where: str, what: str) -> str | None:
        text = self.string(node, where, what)
        if text is not None and not text.startswith("/"):
            self.add(node, where, f"must be {what} (starting with /)", show(node))
            return None
        return text

    def sizes(self, node: Any, where: str) -> tuple[float, ...] | None:
        if node.tag == NULL_TAG:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.add(node, where, "must be a list of input sizes, e.g. [1e6, 1e7]", show(node))
            return None
        values = [self.number(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        if any(v is None for v in values):
            return None
        return tuple(dict.fromkeys(v for v in values if v is not None))
