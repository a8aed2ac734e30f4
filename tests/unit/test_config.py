"""memwatch.config: the daemon's YAML config -> frozen dataclasses, or every problem found.

Each problem is one line, ``file:line: key.path: problem (got value)``; a bcrypt hash (or a
password written where a hash belongs) never appears in a message or a repr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from memwatch import cli
from memwatch import config as config_module
from memwatch.config import (
    DEFAULT_INTERVAL_S,
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_PORT,
    Config,
    Selector,
    WebConfig,
    load_config,
    parse_config,
)
from memwatch.errors import ConfigError, MemwatchError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "memwatch.yaml"
# Pattern-valid bcrypt hashes (the first is the classic example from the bcrypt paper's
# reference implementation); never to appear in any message.
HASH = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
HASH2 = "$2y$12$abcdefghijklmnopqrstuuWq0QKkbZ6mJL3o2ydQ7nxl7S9Z6b3uW"
PASSWORD = "hunter2-plaintext"
ONE_ENTRY = "watch:\n  - name: job\n    pid: 1\n"


def problems(text: str, path: str = "memwatch.yaml") -> list[str]:
    """The problems parse_config reports for ``text`` (it must report some)."""
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), path)
    err = info.value
    assert str(err) == "\n".join(err.problems)
    assert err.exit_code == 1 and isinstance(err, MemwatchError)
    return err.problems


def _problem_id(value: str) -> str:
    """'m.yaml:3: watch[0].pid: must be ...' -> 'watch[0].pid: must be'; config text -> ''."""
    if not value.startswith("m.yaml:"):
        return ""
    where, problem = value.split(": ", 2)[1:]
    return f"{where}: {' '.join(problem.split()[:3])}"


def one_problem(text: str, path: str = "memwatch.yaml") -> str:
    found = problems(text, path)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two self-signed certificates with their keys, and an encrypted key."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide the openssl command")
        pytest.skip("needs the openssl command to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    for name in ("a", "b"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
            + ["-subj", "/CN=localhost", "-keyout", d / f"{name}.key", "-out", d / f"{name}.crt"],
            check=True,
            capture_output=True,
        )
    subprocess.run(
        ["openssl", "pkey", "-in", d / "a.key", "-aes256", "-passout", "pass:x"]
        + ["-out", d / "encrypted.key"],
        check=True,
        capture_output=True,
    )
    return {
        "cert": d / "a.crt",
        "key": d / "a.key",
        "other_key": d / "b.key",
        "encrypted_key": d / "encrypted.key",
    }


# -- the shipped example ----------------------------------------------------------------


def test_shipped_example_is_valid_and_watches_what_every_systemd_machine_runs():
    config = load_config(str(EXAMPLE))
    assert config.listen_address == "127.0.0.1"  # loopback by default
    assert config.web == WebConfig()
    # Only a job present everywhere is active: examples of absent services fired
    # MemwatchJobGone on every machine that does not run them.
    assert [(e.name, e.selector) for e in config.watch] == [
        ("journald", Selector(systemd_unit="systemd-journald.service"))
    ]


def test_shipped_example_entries_are_valid_once_uncommented(tmp_path):
    text = re.sub(r"^  # (- |  )", r"  \1", EXAMPLE.read_text(), flags=re.M)
    config = parse_config(text, str(tmp_path / "memwatch.yaml"))
    assert [e.name for e in config.watch] == ["journald", "postgres", "etl", "nginx"]
    _, postgres, etl, nginx = config.watch
    assert postgres.selector == Selector(systemd_unit="postgresql@15-main.service")
    assert postgres.pss and postgres.interval_s == 5
    assert etl.selector.cmdline is not None
    assert etl.selector.cmdline.search("/usr/bin/python3 /srv/etl/pipeline.py --rows 500")
    assert etl.size_from_cmdline is not None
    match = etl.size_from_cmdline.search("python3 pipeline.py --rows=2500000")
    assert match is not None and match.group(1) == "2500000"
    assert etl.sizes == (1e6, 1e7)
    assert nginx.selector == Selector(pidfile="/run/nginx.pid") and nginx.children
    lines = text.splitlines()
    for entry in config.watch:
        assert f"name: {entry.name}" in lines[entry.line - 1]


def test_shipped_example_web_section_is_valid_once_filled_in(tmp_path, tls_pair):
    # The commented inline web section, uncommented, with real files and a real hash.
    text = EXAMPLE.read_text()
    block = re.search(r"^# web:\n(?:#   .*\n)+", text, re.M)
    assert block is not None
    web = re.sub(r"^# ?", "", block.group(0), flags=re.M)
    web = web.replace("/etc/memwatch/tls/memwatch.crt", str(tls_pair["cert"]))
    web = web.replace("/etc/memwatch/tls/memwatch.key", str(tls_pair["key"]))
    web = re.sub(r"\$2y\$12\$\S+", HASH, web)
    config = parse_config(text.replace(block.group(0), web), str(tmp_path / "memwatch.yaml"))
    assert config.web.tls and config.web.key_file == str(tls_pair["key"])
    assert config.web.basic_auth_users == (("prometheus", HASH),)


def test_shipped_example_placeholder_hash_does_not_pass_as_a_hash():
    text = EXAMPLE.read_text()
    placeholder = re.search(r"prometheus: (\$2y\$\S+)", text)
    assert placeholder is not None
    found = one_problem(
        f"web:\n  basic_auth_users:\n    prometheus: {placeholder.group(1)}\n{ONE_ENTRY}"
    )
    assert "web.basic_auth_users.prometheus: must be a bcrypt hash" in found


def test_check_config_accepts_the_shipped_example(capsys):
    assert cli.main(["check-config", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: OK (1 watch entry)\n"
    assert err == ""


# -- defaults ---------------------------------------------------------------------------


def test_defaults_of_a_minimal_config():
    config = parse_config(ONE_ENTRY, "memwatch.yaml")
    assert config == Config(
        path="memwatch.yaml",
        listen_address=DEFAULT_LISTEN_ADDRESS,
        port=DEFAULT_PORT,
        interval_s=DEFAULT_INTERVAL_S,
        history_path=None,
        web=WebConfig(),
        watch=config.watch,
    )
    assert (DEFAULT_LISTEN_ADDRESS, DEFAULT_PORT, DEFAULT_INTERVAL_S) == ("127.0.0.1", 9793, 1.0)
    (entry,) = config.watch
    assert entry.name == "job" and entry.selector == Selector(pid=1)
    assert entry.children is True and entry.pss is False
    assert entry.interval_s == 1.0 and entry.sizes == () and entry.size_from_cmdline is None
    assert entry.line == 2


def test_entry_interval_defaults_to_the_top_level_interval():
    config = parse_config(
        "interval: 2.5\nwatch:\n  - {name: a, pid: 1}\n  - {name: b, pid: 2, interval: 500ms}\n",
        "m.yaml",
    )
    assert config.interval_s == 2.5
    assert [e.interval_s for e in config.watch] == [2.5, 0.5]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("1", 1.0), ("0.25", 0.25), ("15s", 15.0), ("1m30s", 90.0), ("1h", 3600.0), ("10ms", 0.01)],
)
def test_intervals_in_seconds_or_as_durations(written, seconds):
    assert parse_config(f"interval: {written}\n{ONE_ENTRY}", "m.yaml").interval_s == seconds


def test_every_setting_is_read(tmp_path):
    config = parse_config(
        textwrap.dedent(
            r"""
            listen_address: "::"
            port: 9100
            interval: 2
            history: data/history.sqlite
            watch:
              - name: etl
                cmdline: 'python .*etl\.py'
                process_name: python3
                children: false
                interval: 0.1
                pss: yes
                size_from_cmdline: '--rows (\d+)'
                sizes: [1e6, 2000000, "3e6", 1e6]
              - name: svc
                cgroup: /system.slice/svc.service
                systemd_unit: svc.service
                pidfile: /run/svc.pid
                pid: 4321
            """
        ),
        str(tmp_path / "memwatch.yaml"),
    )
    assert (config.listen_address, config.port, config.interval_s) == ("::", 9100, 2.0)
    assert config.history_path == str(tmp_path / "data" / "history.sqlite")  # from its dir
    etl, svc = config.watch
    assert etl.selector.cmdline.pattern == r"python .*etl\.py"
    assert etl.selector.name == "python3"
    assert (etl.children, etl.interval_s, etl.pss) == (False, 0.1, True)
    # YAML 1.1 reads 1e6 (no dot) as a string: accepted as the number; repeats dropped.
    assert etl.sizes == (1e6, 2e6, 3e6)
    assert svc.selector == Selector(
        pid=4321,
        pidfile="/run/svc.pid",
        cgroup="/system.slice/svc.service",
        systemd_unit="svc.service",
    )


# -- each kind of problem, with its exact message and line ------------------------------


def test_the_documented_example_message():
    text = """\
        listen_address: 127.0.0.1
        port: 9793
        watch:
          - name: a
            pid: 10
          - name: b
            pid: 11
            interval: 2
          - name: c
            pid: 12
            children: false
            interval: -1
        """
    assert problems(text) == ["memwatch.yaml:12: watch[2].interval: must be > 0 (got -1)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "port: 70000\n" + ONE_ENTRY,
            "m.yaml:1: port: must be a port number between 1 and 65535 (got 70000)",
        ),
        (
            "port: '9793'\n" + ONE_ENTRY,
            'm.yaml:1: port: must be a port number between 1 and 65535 (got "9793")',
        ),
        (
            "port: true\n" + ONE_ENTRY,
            "m.yaml:1: port: must be a port number between 1 and 65535 (got true)",
        ),
        (
            "listen_address: 0.0.0.0:9793\n" + ONE_ENTRY,
            "m.yaml:1: listen_address: must be an address without a port: the port goes in "
            "'port' (got \"0.0.0.0:9793\")",
        ),
        (
            "listen_address: '[::1]'\n" + ONE_ENTRY,
            'm.yaml:1: listen_address: must be an IPv6 address without brackets (got "[::1]")',
        ),
        (
            "interval: 0\n" + ONE_ENTRY,
            "m.yaml:1: interval: must be > 0 (got 0)",
        ),
        (
            "interval: 0.0001\n" + ONE_ENTRY,
            "m.yaml:1: interval: must be at least 0.001 s (got 0.0001)",
        ),
        (
            "interval: 7200\n" + ONE_ENTRY,
            "m.yaml:1: interval: must be at most 3600 s (one hour) (got 7200)",
        ),
        (
            "interval: soon\n" + ONE_ENTRY,
            "m.yaml:1: interval: must be a number of seconds or a duration like 500ms, 15s, "
            '1m (got "soon")',
        ),
        (
            "history: ''\n" + ONE_ENTRY,
            'm.yaml:1: history: must be a path or a postgresql:// URL (got "")',
        ),
        (
            "watch:\n  - name: a\n    pid: 0\n",
            "m.yaml:3: watch[0].pid: must be a process id between 1 and 4194304 (got 0)",
        ),
        (
            "watch:\n  - name: a\n    pidfile: run/a.pid\n",
            "m.yaml:3: watch[0].pidfile: must be an absolute path to a file holding a pid "
            '(starting with /) (got "run/a.pid")',
        ),
        (
            "watch:\n  - name: a\n    process_name: bin/python3\n",
            "m.yaml:3: watch[0].process_name: a process name or the executable's absolute "
            'path (/usr/sbin/nginx) (got "bin/python3")',
        ),
        (
            "watch:\n  - name: a\n    cmdline: 'python (.*'\n",
            "m.yaml:3: watch[0].cmdline: not a regular expression RE2 can run: missing ): "
            "python (.* (RE2 syntax, as in Prometheus: no backreferences, no lookarounds) "
            '(got "python (.*")',
        ),
        (
            "watch:\n  - name: a\n    cgroup: /sys/fs/cgroup/system.slice/a.service\n",
            "m.yaml:3: watch[0].cgroup: give the path as /proc/PID/cgroup shows it, without "
            "the /sys/fs/cgroup mount (e.g. /system.slice/nginx.service) "
            '(got "/sys/fs/cgroup/system.slice/a.service")',
        ),
        (
            "watch:\n  - name: a\n    systemd_unit: postgresql\n",
            "m.yaml:3: watch[0].systemd_unit: must name the unit with its type, e.g. "
            'postgresql.service (got "postgresql")',
        ),
        (
            "watch:\n  - name: a\n    systemd_unit: backup.timer\n",
            "m.yaml:3: watch[0].systemd_unit: a .timer unit has no processes of its own: "
            'give the unit it starts (got "backup.timer")',
        ),
        (
            "watch:\n  - name: a\n    pid: 1\n    children: maybe\n",
            'm.yaml:4: watch[0].children: must be true or false (got "maybe")',
        ),
        (
            "watch:\n  - name: a\n    pid: 1\n"
            "    size_from_cmdline: '--rows (\\d+) --cols (\\d+)'\n",
            "m.yaml:4: watch[0].size_from_cmdline: must have exactly 1 capture group around "
            "the size, not 2 (write other groups as (?:...)) "
            '(got "--rows (\\d+) --cols (\\d+)")',
        ),
        (
            "watch:\n  - name: a\n    pid: 1\n    sizes: [10, -5]\n",
            "m.yaml:4: watch[0].sizes[1]: must be a number >= 0 (got -5)",
        ),
        (
            "watch:\n  - name: a\n    pid: 1\n    sizes: 10\n",
            "m.yaml:4: watch[0].sizes: must be a list of input sizes, e.g. [1e6, 1e7] (got 10)",
        ),
        (
            "watch:\n  - name: ''\n    pid: 1\n",
            'm.yaml:2: watch[0].name: must be a non-empty string (the job label) (got "")',
        ),
        (
            'watch:\n  - name: "etl\\n"\n    pid: 1\n',
            "m.yaml:2: watch[0].name: must not have control characters or spaces at either "
            'end (got "etl\\n")',
        ),
        (
            "watch:\n  - pid: 1\n",
            "m.yaml:2: watch[0]: missing name (the job label of this entry)",
        ),
        (
            "watch:\n  - name: a\n    children: true\n",
            "m.yaml:2: watch[0]: no selector: give at least one of pid, pidfile, "
            "process_name, user, cmdline, cgroup, systemd_unit",
        ),
        (
            "watch:\n  - postgres\n",
            'm.yaml:2: watch[0]: must be a mapping with a name and a selector (got "postgres")',
        ),
        (
            "watch: []\n",
            "m.yaml:1: watch: must list at least one process to watch (- name: ...) (got a list)",
        ),
        (
            "port: 9793\n",
            "m.yaml:1: watch: missing: list at least one process to watch",
        ),
        (
            "",
            "m.yaml:1: watch: missing: list at least one process to watch",
        ),
        (
            "- name: a\n  pid: 1\n",
            "m.yaml:1: top level: must be a mapping of settings (listen_address, watch, ...) "
            "(got a list)",
        ),
    ],
    ids=_problem_id,
)
def test_problem_message(text, expected):
    assert one_problem(text, "m.yaml") == expected


def test_names_must_be_unique():
    text = (
        "watch:\n  - name: etl\n    pid: 1\n  - name: web\n    pid: 2\n  - name: etl\n    pid: 3\n"
    )
    assert one_problem(text) == (
        "memwatch.yaml:6: watch[2].name: already the name of watch[0] (line 2): names must be "
        'unique (got "etl")'
    )


def test_duplicate_keys_are_reported():
    text = "port: 1\nport: 2\n" + ONE_ENTRY
    assert one_problem(text) == "memwatch.yaml:2: port: duplicate key (first at line 1)"


def test_unknown_key_suggests_the_closest_known_key():
    text = "intervall: 2\n" + ONE_ENTRY + "    childern: false\n"
    assert problems(text) == [
        "memwatch.yaml:1: intervall: unknown key; did you mean 'interval'?",
        "memwatch.yaml:5: watch[0].childern: unknown key; did you mean 'children'?",
    ]


def test_unknown_key_named_as_other_tools_name_it():
    text = "watch:\n  - name: pg\n    comm: postgres\n"
    assert problems(text)[1] == (
        "memwatch.yaml:3: watch[0].comm: unknown key; did you mean 'process_name'?"
    )


def test_unknown_key_without_a_close_match_lists_the_known_keys():
    assert one_problem("colour: blue\n" + ONE_ENTRY) == (
        "memwatch.yaml:1: colour: unknown key (known keys: listen_address, port, interval, "
        "history, web, web_config_file, watch)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("watch:\n\t- name: a\n", "m.yaml:2: YAML syntax: found character '\\t' that cannot "),
        (
            "port: 1\nwatch\n  - name: a\n",
            "m.yaml:3: YAML syntax: could not find expected ':' (while scanning a simple key "
            "at line 2)",
        ),
        ("watch: [a, b\nport: 1\n", "m.yaml:2: YAML syntax: expected ',' or ']'"),
        ("port: 1\n---\nport: 2\n", "m.yaml:2: YAML syntax: but found another document"),
        ("port: 1\nwatch: *nope\n", "m.yaml:2: YAML syntax: found undefined alias 'nope'"),
        ("port: 1\nx: a\x07b\n", "m.yaml:2: YAML syntax: character #x0007 is not allowed"),
    ],
    ids=["tab", "no-colon", "unclosed-list", "two-documents", "undefined-alias", "control"],
)
def test_yaml_syntax_errors_name_the_line(text, expected):
    assert one_problem(text, "m.yaml").startswith(expected)


def test_every_problem_is_reported_in_line_order():
    text = """\
        port: 0
        interval: -1
        watch:
          - name: a
            pid: -3
            bogus: 1
          - name: a
            pid: 2
            sizes: [x]
        """
    assert problems(text) == [
        "memwatch.yaml:1: port: must be a port number between 1 and 65535 (got 0)",
        "memwatch.yaml:2: interval: must be > 0 (got -1)",
        "memwatch.yaml:5: watch[0].pid: must be a process id between 1 and 4194304 (got -3)",
        "memwatch.yaml:6: watch[0].bogus: unknown key (known keys: name, pid, pidfile, "
        "process_name, user, cmdline, cgroup, systemd_unit, children, interval, pss, "
        "size_from_cmdline, sizes)",
        "memwatch.yaml:7: watch[1].name: already the name of watch[0] (line 4): names must "
        'be unique (got "a")',
        'memwatch.yaml:9: watch[1].sizes[0]: must be a number >= 0 (got "x")',
    ]


def test_yaml_merge_keys_work_and_written_keys_override_merged_ones():
    text = """\
        watch:
          - &base {name: a, pid: 1, children: false, interval: 5}
          - <<: *base
            name: b
            interval: 2
        """
    a, b = parse_config(textwrap.dedent(text), "m.yaml").watch
    assert (b.name, b.children, b.interval_s, b.selector.pid) == ("b", False, 2.0, 1)


def test_cannot_read_the_file(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.problems == [f"{missing}: cannot read: No such file or directory"]


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"port: 1\nwatch:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems == [f"{path}:3: not UTF-8 text (invalid continuation byte)"]


# -- web: TLS and basic auth, and secrets -----------------------------------------------


def test_basic_auth_users_are_read():
    text = f"web:\n  basic_auth_users:\n    alice: {HASH}\n    bob: '{HASH2}'\n" + ONE_ENTRY
    web = parse_config(text, "m.yaml").web
    assert web.basic_auth_users == (("alice", HASH), ("bob", HASH2))
    assert not web.tls


@pytest.mark.parametrize(
    "value",
    [PASSWORD, HASH[:-1], HASH.replace("$2a$", "$2x$"), HASH.replace("$10$", "$03$"), "12345"],
    ids=["plaintext", "too-short", "unknown-variant", "cost-too-low", "a-number"],
)
def test_basic_auth_value_that_is_not_a_bcrypt_hash_is_never_shown(value):
    text = f"web:\n  basic_auth_users:\n    alice: {value}\n" + ONE_ENTRY
    found = one_problem(text)
    assert found == (
        "memwatch.yaml:3: web.basic_auth_users.alice: must be a bcrypt hash ($2y$, $2b$ or "
        "$2a$, cost, 53 characters), e.g. from: htpasswd -nBC 12 alice | cut -d: -f2 "
        "(got a value that is not a bcrypt hash)"
    )
    assert value not in found


def test_secrets_never_appear_in_messages_or_reprs():
    # Valid hashes next to other problems, a password in place of the whole section, and a
    # syntax error on a line holding a hash: none of them may echo a secret.
    texts = [
        f"port: 0\nweb:\n  basic_auth_users:\n    alice: {HASH}\n    bob: {PASSWORD}\n" + ONE_ENTRY,
        f"web:\n  basic_auth_users: {PASSWORD}\n" + ONE_ENTRY,
        f"web: {PASSWORD}\n" + ONE_ENTRY,
        f"web:\n  basic_auth_users:\n    alice: {HASH}\n     bob: {PASSWORD}: x\n" + ONE_ENTRY,
        f"web:\n  basic_auth_users:\n    alice: {HASH}\n    alice: {PASSWORD}\n" + ONE_ENTRY,
        f"web:\n  basic_auth_users:\n    ? [{PASSWORD}]\n    : {HASH}\n" + ONE_ENTRY,
    ]
    for text in texts:
        for problem in problems(text):
            assert HASH not in problem and PASSWORD not in problem, problem
    config = parse_config(f"web:\n  basic_auth_users:\n    alice: {HASH}\n" + ONE_ENTRY, "m")
    assert config.web.basic_auth_users == (("alice", HASH),)
    for shown in (repr(config), str(config), repr(config.web), f"{config.web}"):
        assert HASH not in shown and "$2a$" not in shown


def test_tls_files_are_read_relative_to_the_config(tmp_path, tls_pair):
    shutil.copy(tls_pair["cert"], tmp_path / "server.crt")
    shutil.copy(tls_pair["key"], tmp_path / "server.key")
    text = "web:\n  tls_server_config:\n    cert_file: server.crt\n    key_file: server.key\n"
    web = parse_config(text + ONE_ENTRY, str(tmp_path / "memwatch.yaml")).web
    assert web.tls
    assert (web.cert_file, web.key_file) == (
        str(tmp_path / "server.crt"),
        str(tmp_path / "server.key"),
    )


def test_tls_needs_both_files(tls_pair):
    text = f"web:\n  tls_server_config:\n    cert_file: {tls_pair['cert']}\n" + ONE_ENTRY
    assert one_problem(text) == (
        "memwatch.yaml:2: web.tls_server_config: key_file missing: TLS needs both cert_file "
        "and key_file"
    )


def test_tls_files_must_be_readable(tmp_path, tls_pair):
    missing = tmp_path / "missing.key"
    text = f"web:\n  tls_server_config:\n    cert_file: {tls_pair['cert']}\n"
    text += f"    key_file: {missing}\n" + ONE_ENTRY
    assert one_problem(text) == (
        f"memwatch.yaml:4: web.tls_server_config.key_file: cannot read: No such file or "
        f'directory (got "{missing}")'
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (
            "other_key",
            "cert_file and key_file must be a PEM certificate and its unencrypted "
            "private key: [X509: KEY_VALUES_MISMATCH] key values mismatch",
        ),
        (
            "encrypted_key",
            "key_file is encrypted: memwatch needs it unencrypted (readable by it alone)",
        ),
    ],
)
def test_tls_certificate_and_key_must_belong_together(tls_pair, key, problem):
    text = f"web:\n  tls_server_config:\n    cert_file: {tls_pair['cert']}\n"
    text += f"    key_file: {tls_pair[key]}\n" + ONE_ENTRY
    assert one_problem(text) == f"memwatch.yaml:2: web.tls_server_config: {problem}"


def test_exporter_toolkit_settings_memwatch_does_not_implement_are_rejected():
    text = "web:\n  tls_server_config:\n    client_auth_type: RequireAndVerifyClientCert\n"
    assert one_problem(text + ONE_ENTRY) == (
        "memwatch.yaml:3: web.tls_server_config.client_auth_type: an exporter-toolkit "
        "setting memwatch does not support (it supports: cert_file, key_file)"
    )


def test_web_config_file_is_read_relative_to_the_config(tmp_path, tls_pair):
    (tmp_path / "tls").mkdir()
    shutil.copy(tls_pair["cert"], tmp_path / "tls" / "c.crt")
    shutil.copy(tls_pair["key"], tmp_path / "tls" / "c.key")
    # Paths in the web config file are taken from its own directory, as exporters do.
    (tmp_path / "tls" / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: c.crt\n  key_file: c.key\n"
        f"basic_auth_users:\n  prometheus: {HASH}\n"
    )
    config = parse_config("web_config_file: tls/web.yml\n" + ONE_ENTRY, str(tmp_path / "m.yaml"))
    assert config.web == WebConfig(
        cert_file=str(tmp_path / "tls" / "c.crt"),
        key_file=str(tmp_path / "tls" / "c.key"),
        basic_auth_users=(("prometheus", HASH),),
    )


def test_problems_in_the_web_config_file_name_that_file_and_its_lines(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {PASSWORD}\nhttp_server_config: {{}}\n")
    found = problems("port: 0\nweb_config_file: web.yml\n" + ONE_ENTRY, str(tmp_path / "m.yaml"))
    assert found == [
        f"{tmp_path / 'm.yaml'}:1: port: must be a port number between 1 and 65535 (got 0)",
        f"{web}:2: basic_auth_users.alice: must be a bcrypt hash ($2y$, $2b$ or $2a$, cost, "
        "53 characters), e.g. from: htpasswd -nBC 12 alice | cut -d: -f2 "
        "(got a value that is not a bcrypt hash)",
        f"{web}:3: http_server_config: an exporter-toolkit setting memwatch does not support "
        "(it supports: tls_server_config, basic_auth_users)",
    ]


def test_web_config_file_that_cannot_be_read(tmp_path):
    found = one_problem("web_config_file: web.yml\n" + ONE_ENTRY, str(tmp_path / "m.yaml"))
    assert found == (
        f"{tmp_path / 'm.yaml'}:1: web_config_file: cannot read: No such file or directory "
        '(got "web.yml")'
    )


def test_empty_web_config_file_means_plain_http(tmp_path):
    (tmp_path / "web.yml").write_text("# nothing yet\n")
    config = parse_config("web_config_file: web.yml\n" + ONE_ENTRY, str(tmp_path / "m.yaml"))
    assert config.web == WebConfig()


def test_web_section_and_web_config_file_are_exclusive():
    text = "web: {}\nweb_config_file: /etc/memwatch/web.yml\n" + ONE_ENTRY
    assert one_problem(text) == (
        "memwatch.yaml:2: web_config_file: give either web_config_file or a web section, not both"
    )


# -- memwatch check-config --------------------------------------------------------------


def test_check_config_reports_each_problem_on_stderr_and_exits_1(tmp_path, capsys):
    path = tmp_path / "memwatch.yaml"
    path.write_text("port: 0\nwatch:\n  - name: a\n    pid: 1\n    interval: -1\n")
    assert cli.main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{path}:1: port: must be a port number between 1 and 65535 (got 0)\n"
        f"{path}:5: watch[0].interval: must be > 0 (got -1)\n"
    )


def test_check_config_of_a_missing_file_exits_1(tmp_path, capsys):
    assert cli.main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    out, err = capsys.readouterr()
    assert (
        out == "" and err == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory\n"
    )


def test_check_config_counts_entries(tmp_path, capsys):
    path = tmp_path / "memwatch.yaml"
    path.write_text(ONE_ENTRY)
    assert cli.main(["check-config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: OK (1 watch entry)\n", "")


def test_check_config_without_a_path_checks_the_daemons_default(capsys, monkeypatch):
    # The daemon reads /etc/memwatch/memwatch.yaml by default: check-config does too.
    read: list[str] = []
    monkeypatch.setattr(config_module, "read_text", lambda path: read.append(path) or "")
    assert cli.main(["check-config"]) == 1
    assert read == ["/etc/memwatch/memwatch.yaml"]
    assert capsys.readouterr().err.startswith("/etc/memwatch/memwatch.yaml:1: watch: missing")


def test_check_config_help_explains_the_output(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["check-config", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "FILE:LINE: key.path: problem (got value)" in out and "exit status" in out


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("a{1001}", "invalid repetition size: {1001}"),  # Python's re compiles it
        (r"(\w+) \1", r"invalid escape sequence: \1"),  # a backreference
        ("x(?=y)", "invalid perl operator: (?="),  # a lookahead
    ],
    ids=["repetition", "backreference", "lookahead"],
)
def test_a_regex_re2_cannot_run_is_refused_with_file_line_key_and_pattern(pattern, reason):
    text = f"watch:\n  - name: job\n    cmdline: '{pattern}'\n"
    (problem,) = problems(text)
    assert problem.startswith(
        f"memwatch.yaml:3: watch[0].cmdline: not a regular expression RE2 can run: {reason}"
    )
    assert problem.endswith(f'(got "{pattern}")')
    assert "\n" not in problem


def test_a_backtracking_regex_is_matched_in_linear_time():
    # (a+)+$ took Python's re 20 s and more per pass against a hostile command line; RE2
    # runs it, and no command line makes it backtrack.
    config = parse_config("watch:\n  - name: job\n    cmdline: '(a+)+$'\n", "m.yaml")
    pattern = config.watch[0].selector.cmdline
    assert pattern.search("a" * 100_000 + "!") is None
    assert pattern.search("xaaa") is not None


def test_yaml_nested_too_deeply_is_a_problem_not_a_crash():
    (problem,) = problems("[" * 5000 + "]" * 5000)
    assert problem.startswith("memwatch.yaml:1: YAML syntax")


def test_a_user_name_with_a_colon_does_not_show_the_hash():
    hashed = "$2y$12$" + "a" * 53
    text = f"web:\n  basic_auth_users:\n    'ops:{hashed}': {hashed}\n" + ONE_ENTRY
    found = problems(text)
    assert found and all(hashed not in p and "ops:" not in p for p in found)
