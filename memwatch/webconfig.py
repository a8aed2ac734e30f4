"""The exporter-toolkit web config (TLS and basic auth), as the daemon's config gives it.

It owns the bcrypt rule: the metrics server checks the hashes it is handed with ``BCRYPT_HASH``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the dev dependencies

from .errors import ConfigError
from .yamlvalues import NULL_TAG, ValueReader, compose, join_key, kind, node_line, read_text, show


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


WEB_KEYS = ("tls_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file")

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

# bcrypt hashes as htpasswd and exporter-toolkit write them: $2a$, $2b$ or $2y$, a cost
# from 04 to 31, then 53 characters of salt and hash.
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
_NOT_BCRYPT = "a value that is not a bcrypt hash"  # the value itself is never shown


def read_web_settings(reader: ValueReader, top: Mapping[str, Any]) -> WebConfig:
    """The web config of a config file's top level: inline under ``web``, or a file."""
    if "web_config_file" not in top:
        node = top.get("web")
        return WebConfig() if node is None else read_web(reader, node, "web")
    node = top["web_config_file"]
    if "web" in top:
        reader.add(
            node, "web_config_file", "give either web_config_file or a web section, not both"
        )
        return WebConfig()
    path = reader.path(node, "web_config_file")
    if path is None:
        return WebConfig()
    try:
        text = read_text(path)
    except ConfigError as err:
        reason = err.problems[0].removeprefix(f"{path}")
        reader.add(node, "web_config_file", reason.lstrip(":0123456789 "), show(node))
        return WebConfig()
    problems = reader.problems.other_file(path)
    root = compose(text, problems)
    if root is None or root.tag == NULL_TAG:
        return WebConfig()  # an empty web config: plain HTTP, no auth, as exporters do
    return read_web(ValueReader(problems, os.path.dirname(path)), root, "")


def read_web(reader: ValueReader, node: Any, where: str) -> WebConfig:
    """Exporter-toolkit web config (inline under ``web``, or a whole web config file)."""
    if node.tag == NULL_TAG:
        return WebConfig()
    unsupported = _WEB_UNSUPPORTED
    if where:
        unsupported = {
            **unsupported,
            "web_config_file": "belongs at the top level, not under web",
        }
    found = reader.fields(
        node,
        where,
        WEB_KEYS,
        "a web config mapping (tls_server_config, basic_auth_users)",
        unsupported,
        secret=True,
    )
    if found is None:
        return WebConfig()
    cert_file, key_file = _read_tls(reader, found.get("tls_server_config"), where)
    users = _read_users(reader, found.get("basic_auth_users"), join_key(where, "basic_auth_users"))
    return WebConfig(cert_file=cert_file, key_file=key_file, basic_auth_users=users)


def _read_tls(reader: ValueReader, node: Any, where: str) -> tuple[str | None, str | None]:
    where = join_key(where, "tls_server_config")
    if node is None or node.tag == NULL_TAG:
        return None, None
    found = reader.fields(
        node, where, TLS_KEYS, "a mapping with cert_file and key_file", _TLS_UNSUPPORTED
    )
    if not found:
        return None, None
    paths = {key: reader.readable(found[key], join_key(where, key)) for key in found}
    for missing in (k for k in TLS_KEYS if k not in found):
        reader.add(node, where, f"{missing} missing: TLS needs both cert_file and key_file")
    cert_file, key_file = paths.get("cert_file"), paths.get("key_file")
    if cert_file is None or key_file is None:
        return None, None
    problem = _tls_problem(cert_file, key_file)
    if problem:
        reader.add(node, where, problem)
        return None, None
    expiry = _expiry_warning(cert_file, time.time())
    if expiry:
        reader.problems.warn(node_line(found["cert_file"]), join_key(where, "cert_file"), expiry)
    return cert_file, key_file


def _read_users(reader: ValueReader, node: Any, where: str) -> tuple[tuple[str, str], ...]:
    if node is None or node.tag == NULL_TAG:
        return ()
    if not isinstance(node, yaml.MappingNode):
        reader.add(node, where, "must be a mapping of user: bcrypt hash", kind(node))
        return ()
    users = []
    for user, key_node, value_node in reader.pairs(node, where, secret=True):
        if not user or ":" in user:
            # Not shown: "ops:$2y$..." is a whole htpasswd line, hash included.
            reader.add(key_node, where, "a user name must be non-empty, without ':'", "a key")
            continue
        value = reader.scalar(value_node, join_key(where, user), secret=True)
        if not (isinstance(value, str) and BCRYPT_HASH.fullmatch(value)):
            reader.add(
                value_node,
                join_key(where, user),
                "must be a bcrypt hash ($2y$, $2b$ or $2a$, cost, 53 characters), e.g. "
                f"from: htpasswd -nBC 12 {user} | cut -d: -f2",
                _NOT_BCRYPT,
            )
            continue
        users.append((user, value))
    return tuple(users)


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
