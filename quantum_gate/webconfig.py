"""The web configuration file (``--web-config-file``) in the Prometheus exporter-toolkit format.

The same file node_exporter, redis_exporter and Prometheus accept with ``--web.config.file``::

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, client_allowed_sans,
                        min_version, max_version, cipher_suites, prefer_server_cipher_suites,
                        curve_preferences}
    http_server_config: {headers, http2}
    basic_auth_users: {user: bcrypt hash}

Read once at start (``load_web_config``); every problem is one ``ConfigError`` line that names the
key, never its value (a hash or a key path is not echoed back). Relative paths are relative to the
file's folder, as in the exporter-toolkit, so a file next to its key in ``$CREDENTIALS_DIRECTORY``
works. What the parsed file serves with lives beside it: the TLS context, re-read when the certificate
changes or on SIGHUP (``tlscontext``), and bcrypt basic auth with its credential cache
(``basicauth``). Choices the format leaves to the server, and the few settings Python's ``ssl`` cannot
honour, are in docs/security.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quantum_gate.config import ConfigError
from quantum_gate.tlscontext import (
    CIPHER_SUITES,
    CLIENT_AUTH,
    CURVES,
    TLS_VERSIONS,
    TlsSettings,
    build_context,
)

# The exporter-toolkit allows only these response headers, some only with these values.
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_KEYS = frozenset(
    {
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    }
)
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    """The parsed file: TLS (None = plain HTTP), users (empty = no basic auth), extra headers."""

    path: Path
    tls: TlsSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()


# ---- reading the file ------------------------------------------------------------------------------


def load_web_config(path: Path) -> WebConfig:
    """Parse and check the whole file, TLS pair included, so a bad file stops the start (exit 1)."""
    where = f"web config {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {_reason(exc)}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}:{line} is not valid YAML") from None
    document = {} if document is None else document
    try:
        config = _parse(path, _mapping(document, "the top level"))
        if config.tls is not None:
            build_context(config.tls)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return config


def _parse(path: Path, document: Mapping[str, Any]) -> WebConfig:
    _only(document, {"tls_server_config", "http_server_config", "basic_auth_users"}, "")
    base = path.parent
    tls = _tls(base, _mapping(document.get("tls_server_config") or {}, "tls_server_config"))
    users = _users(_mapping(document.get("basic_auth_users") or {}, "basic_auth_users"))
    headers = _headers(_mapping(document.get("http_server_config") or {}, "http_server_config"))
    return WebConfig(path=path, tls=tls, users=users, headers=headers)


def _tls(base: Path, raw: Mapping[str, Any]) -> TlsSettings | None:
    _only(raw, TLS_KEYS, "tls_server_config.")
    key = "tls_server_config."
    cert, private = _text(raw, "cert_file", key), _text(raw, "key_file", key)
    if not cert and not private:
        if raw.get("client_ca_file") or raw.get("client_auth_type"):
            raise ValueError(f"{key}cert_file: client authentication needs cert_file and key_file")
        return None  # as in the exporter-toolkit: no certificate, plain HTTP
    if not cert:
        raise ValueError(f"{key}cert_file: missing (key_file is set)")
    if not private:
        raise ValueError(f"{key}key_file: missing (cert_file is set)")
    auth, ca, sans = _client_auth(raw)
    minimum = _text(raw, "min_version", key) or "TLS12"
    maximum = _text(raw, "max_version", key) or None
    for name, value in (("min_version", minimum), ("max_version", maximum)):
        if value is not None and value not in TLS_VERSIONS:
            raise ValueError(f"{key}{name}: must be one of {', '.join(TLS_VERSIONS)}")
    suites = _strings(raw, "cipher_suites", key)
    for suite in suites:
        if suite not in CIPHER_SUITES:
            raise ValueError(f"{key}cipher_suites: {suite!r} is not a TLS 1.2 suite Python's ssl can use")
    curves = _strings(raw, "curve_preferences", key)
    if len(curves) > 1 or any(curve not in CURVES for curve in curves):
        raise ValueError(f"{key}curve_preferences: one of {', '.join(CURVES)} (Python's ssl sets one)")
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ValueError(f"{key}prefer_server_cipher_suites: must be true or false")
    return TlsSettings(
        cert_file=base / cert,
        key_file=base / private,
        client_auth_type=auth,
        client_ca_file=base / ca if ca else None,
        client_allowed_sans=sans,
        min_version=minimum,
        max_version=maximum,
        cipher_suites=suites,
        prefer_server_cipher_suites=prefer,
        curve=CURVES[curves[0]] if curves else None,
    )


def _client_auth(raw: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    key = "tls_server_config."
    auth = _text(raw, "client_auth_type", key) or "NoClientCert"
    if auth not in CLIENT_AUTH:
        raise ValueError(f"{key}client_auth_type: must be one of {', '.join(CLIENT_AUTH)}")
    ca = _text(raw, "client_ca_file", key)
    needs_ca = CLIENT_AUTH[auth][1]
    if needs_ca and not ca:
        raise ValueError(f"{key}client_ca_file: {auth} needs the CA that signs client certificates")
    if ca and not needs_ca:
        raise ValueError(f"{key}client_auth_type: client_ca_file is set but {auth} does not verify")
    sans = _strings(raw, "client_allowed_sans", key)
    if sans and auth != "RequireAndVerifyClientCert":
        raise ValueError(f"{key}client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert")
    return auth, ca, sans


def _users(raw: Mapping[str, Any]) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise ValueError("basic_auth_users: a user name is a non-empty string without ':'")
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            raise ValueError(f"basic_auth_users.{user}: not a bcrypt hash (htpasswd -nBC 10 {user})")
        users[user] = hashed.encode("ascii")
    return users


def _headers(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    _only(raw, {"headers", "http2"}, "http_server_config.")
    if not isinstance(raw.get("http2", True), bool):
        raise ValueError("http_server_config.http2: must be true or false")
    headers = _mapping(raw.get("headers") or {}, "http_server_config.headers")
    allowed = {name.lower(): name for name in ALLOWED_HEADERS}
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        canonical = allowed.get(str(name).lower())
        key = f"http_server_config.headers.{name}"
        if canonical is None:
            raise ValueError(f"{key}: cannot be set (one of {', '.join(ALLOWED_HEADERS)})")
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n"):
            raise ValueError(f"{key}: must be a one-line string")
        values = ALLOWED_HEADERS[canonical]
        if values is not None and value.lower() not in values:
            raise ValueError(f"{key}: must be one of {', '.join(values)}")
        out.append((canonical, value))
    return tuple(out)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a mapping")
    return value


def _only(raw: Mapping[str, Any], known: set[str] | frozenset[str], prefix: str) -> None:
    for name in raw:
        if name not in known:
            raise ValueError(f"{prefix}{name}: unknown key")


def _text(raw: Mapping[str, Any], name: str, prefix: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{prefix}{name}: must be a string")
    return value


def _strings(raw: Mapping[str, Any], name: str, prefix: str) -> tuple[str, ...]:
    value = raw.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{prefix}{name}: must be a list of strings")
    return tuple(value)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else type(exc).__name__
