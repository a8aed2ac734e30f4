"""YAML values with their lines: reading a config file, typed readers, and problems.

Errors name the file, the line, the key path and the value, as
``memwatch.yaml:12: watch[2].interval: must be > 0 (got -1)``; a bcrypt hash is never
shown. The sections built on this (``config``, ``webconfig``) say what the keys mean.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev dependencies

from .errors import ConfigError
from .limits import MAX_INTERVAL_S, MIN_INTERVAL_S
from .report import parse_duration


class Match(Protocol):
    def group(self, index: int, /) -> str | None: ...


class Regex(Protocol):
    """A compiled pattern: RE2's, as the config makes them (Python's re works too)."""

    @property
    def pattern(self) -> str: ...

    @property
    def groups(self) -> int: ...

    def search(self, text: str, /) -> Match | None: ...


# The YAML is composed into nodes (not loaded into dicts) so that every value still knows
# its line; every problem is collected before anything is raised.

# A 10 MB YAML file took 12 s and 1.5 GB to load, all of it holding the daemon's loop at a
# reload. 256 KiB (about 3500 watch entries) loads in about 0.7 s on a loaded 2-core machine.
MAX_CONFIG_BYTES = 256 << 10
_SHOW_MAX = 80

# Words users bring from other tools (process-exporter, systemd) -> the key memwatch uses.
_ALIASES = {
    "exe": "process_name",
    "comm": "process_name",
    "unit": "systemd_unit",
    "job": "name",
    "regex": "cmdline",
}

# libyaml's parser when PyYAML was built with it: composes ~9x faster than the pure-Python
# one (0.16 s against 1.47 s for 4000 watch entries), so a reload holds the loop less. A
# file it refuses is composed again by the pure-Python one, whose messages say more.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
NULL_TAG = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"


def read_text(path: str) -> str:
    """The text of a config file; ConfigError (one line) if it cannot be read as one."""
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


class Problems:
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

    def other_file(self, path: str) -> Problems:
        return Problems(path, self.items, self.rank + 1, self.warnings)

    def lines(self, items: list[_Item] | None = None) -> list[str]:
        chosen = self.items if items is None else items
        return [text for _, _, text in sorted(chosen, key=lambda item: item[:2])]


# Anything shaped like a bcrypt hash, in any key or value, even cut short: a hash put under
# the wrong key must not be echoed back (it can be cracked offline).
_HASH_LIKE = re.compile(r"\$2[aby]?\$[0-9]{1,2}\$[./A-Za-z0-9]*")


def _redact(text: str) -> str:
    return _HASH_LIKE.sub("<a bcrypt hash, not shown>", text)


def compose(text: str, problems: Problems) -> Any:
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


def node_line(node: Any) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def kind(node: Any) -> str:
    """What a node is ("a mapping", "null"...), for messages that must not show a value."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "null"
    return "a string" if node.tag == _STR else "a value"


def show(node: Any) -> str:
    """A value as the user wrote it: strings quoted, numbers and booleans as typed."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == NULL_TAG:
        return kind(node)
    text: str = node.value
    if node.tag == _STR:  # quoted, control characters escaped, backslashes left alone
        text = '"' + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + '"'
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def join_key(where: str, key: str) -> str:
    """The key path of ``key`` under ``where``: "watch[0]" + "name" -> "watch[0].name"."""
    return f"{where}.{key}" if where else key


def _suggest(key: str, known: Sequence[str]) -> str:
    if key in _ALIASES and _ALIASES[key] in known:
        return f"unknown key; did you mean '{_ALIASES[key]}'?"
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key (known keys: {', '.join(known)})"


class ValueReader:
    """Walks the node tree of one file, turning nodes into values and problems; the
    sections (the watch list, the web config) build on its typed readers."""

    def __init__(self, problems: Problems, base_dir: str) -> None:
        self.problems = problems
        self.base_dir = base_dir  # relative paths in the file are taken from here
        self.constructor = yaml.SafeLoader("")  # builds scalars; its stream is never read
        # id(value node) -> line of its key: a block mapping or list value starts a line
        # below its key, and "tls_server_config: cert_file missing" belongs on the key's.
        self.key_lines: dict[int, int] = {}

    def add(self, at: Any, where: str, problem: str, got: str | None = None) -> None:
        """Record a problem; one about a whole mapping or list names the line of its key."""
        line = at if isinstance(at, int) else self.key_lines.get(id(at), node_line(at))
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
            line = node_line(key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                what = "key" if secret else f"key {show(key_node)}"
                self.add(line, where or "top level", f"{what} is not a name")
                continue
            key: str = key_node.value
            if id(key_node) not in explicit:
                merged[key] = key_node, value_node
            elif key in written:
                first = node_line(written[key][0])
                self.add(line, join_key(where, key), f"duplicate key (first at line {first})")
            else:
                written[key] = key_node, value_node
        # Keys written in the mapping itself override merged ones, as YAML says.
        pairs = {**merged, **written}
        for key, (key_node, value_node) in pairs.items():
            if isinstance(value_node, (yaml.MappingNode, yaml.SequenceNode)):
                self.key_lines[id(value_node)] = node_line(key_node)
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
            got = kind(node) if secret else show(node)
            self.add(node, where or "top level", f"must be {what}", got)
            return None
        found: dict[str, Any] = {}
        for key, key_node, value_node in self.pairs(node, where, secret):
            if key in known:
                found[key] = value_node
            elif unsupported and key in unsupported:
                message = unsupported[key].format(known=", ".join(known))
                self.add(key_node, join_key(where, key), message)
            else:
                self.add(key_node, join_key(where, key), _suggest(key, known))
        return found

    # -- scalars: each returns None after recording why the value cannot be used --------

    def scalar(self, node: Any, where: str, secret: bool = False) -> object:
        if not isinstance(node, yaml.ScalarNode):
            return node  # a mapping or list: the caller's type check names it
        try:
            return self.constructor.construct_object(node)
        except yaml.MarkedYAMLError as err:
            got = kind(node) if secret else show(node)
            self.add(node, where, f"unusable YAML value: {err.problem}", got)
            return node

    def string(self, node: Any, where: str, what: str = "a string") -> str | None:
        value = self.scalar(node, where)
        if isinstance(value, str) and value.strip():
            return value
        self.add(node, where, f"must be {what}", show(node))
        return None

    def boolean(self, node: Any, where: str) -> bool | None:
        value = self.scalar(node, where)
        if isinstance(value, bool):
            return value
        self.add(node, where, "must be true or false", show(node))
        return None

    def integer(self, node: Any, where: str, low: int, high: int, what: str) -> int | None:
        value = self.scalar(node, where)
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.add(node, where, f"must be {what} between {low} and {high}", show(node))
        return None

    def number(self, node: Any, where: str) -> float | None:
        """A finite number >= 0; "1e6" too (YAML 1.1 reads 1e6 without a dot as a string)."""
        value = self.scalar(node, where)
        number = _as_float(value)
        if number is not None and math.isfinite(number) and number >= 0:
            return number
        self.add(node, where, "must be a number >= 0", show(node))
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
        self.add(node, where, problem, show(node))
        return None

    def regex(self, node: Any, where: str, groups: int | None = None) -> Regex | None:
        text = self.string(node, where, "a regular expression")
        if text is None:
            return None
        try:
            pattern = compile_regex(text)
        except ValueError as err:
            self.add(node, where, str(err), show(node))
            return None
        if groups is not None and pattern.groups != groups:
            self.add(
                node,
                where,
                f"must have exactly {groups} capture group around the size, not "
                f"{pattern.groups} (write other groups as (?:...))",
                show(node),
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
                self.add(node, where, "not a regular file", show(node))
                return None
            with open(path, "rb"):
                pass
        except OSError as err:
            self.add(node, where, f"cannot read: {err.strerror or err}", show(node))
            return None
        return path


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


# Prometheus-style durations ("500ms", "15s", "1m30s") besides plain numbers of seconds.
def _duration_s(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None
