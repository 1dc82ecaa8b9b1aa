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
works. The certificate and key are re-read when their files change or on SIGHUP (``TlsSource``); a
broken new pair keeps the old one. Passwords are checked with bcrypt and a verified credential is
kept for ``http.auth_cache_seconds`` (``BasicAuth``). Choices the format leaves to the server, and
the few settings Python's ``ssl`` cannot honour, are in docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import structlog
import yaml

from quantum_gate.config import ConfigError

log = structlog.get_logger("quantum_gate.webconfig")

# client_auth_type -> (Python verify mode, needs client_ca_file). Python's ssl has no "ask for a
# certificate but accept any": RequestClientCert (Go: ask, accept anything, also no certificate) lets
# every client in, exactly like NoClientCert, so it does not ask; RequireAnyClientCert is served as
# RequireAndVerifyClientCert (stricter: the certificate must chain to client_ca_file). docs/security.md.
CLIENT_AUTH: dict[str, tuple[ssl.VerifyMode, bool]] = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_NONE, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's TLS 1.0-1.2 suite names (the format's spelling) -> OpenSSL's. TLS 1.3 suites are not
# configurable, in Go as in Python. RC4 and 3DES suites are absent from OpenSSL 3: refused.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
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
class TlsSettings:
    """``tls_server_config`` with its paths resolved; the context is built by ``build_context``."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str | None = None
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve: str | None = None

    def files(self) -> tuple[Path, ...]:
        return (self.cert_file, self.key_file) + ((self.client_ca_file,) if self.client_ca_file else ())


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


# ---- the TLS context -------------------------------------------------------------------------------


def build_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context from the files as they are now; ValueError naming the key when they are not
    usable (unreadable, not PEM, an encrypted key, a key that does not match the certificate)."""
    key = "tls_server_config."
    for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        try:
            with path.open("rb") as handle:
                head = handle.read(1 << 20)
        except OSError as exc:
            raise ValueError(f"{key}{name}: cannot read {path}: {_reason(exc)}") from None
        if name == "cert_file" and b"-----BEGIN CERTIFICATE-----" not in head:
            raise ValueError(f"{key}cert_file: {path} holds no PEM certificate")
        if name == "key_file" and b"PRIVATE KEY-----" not in head:
            raise ValueError(f"{key}key_file: {path} holds no PEM private key")
        if name == "key_file" and b"ENCRYPTED" in head:
            raise ValueError(f"{key}key_file: {path} is encrypted; quantum-gate needs an unencrypted key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.cipher_suites:
        context.set_ciphers(":".join(CIPHER_SUITES[suite] for suite in tls.cipher_suites))
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve is not None:
        context.set_ecdh_curve(tls.curve)
    try:
        # The password callback refuses: an encrypted key must never make OpenSSL prompt on a tty.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        reason = "does not match cert_file" if "MISMATCH" in str(exc).upper() else "cannot be loaded"
        raise ValueError(f"{key}key_file: {tls.key_file} {reason} ({_ssl_reason(exc)})") from None
    mode, _ = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"{key}client_ca_file: {tls.client_ca_file} cannot be loaded ({_ssl_reason(exc)})"
            ) from None
    context.verify_mode = mode
    return context


def _no_password() -> bytes:
    raise ValueError("the key is encrypted")


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError):
        return _reason(exc)
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def peer_allowed(sslsock: ssl.SSLSocket, allowed: tuple[str, ...]) -> bool:
    """``client_allowed_sans``: one of the verified client certificate's DNS/IP/email/URI SANs."""
    if not allowed:
        return True
    cert = sslsock.getpeercert() or {}
    entries: Any = cert.get("subjectAltName", ())  # ((kind, value), ...), e.g. ("DNS", "scraper")
    names = {str(entry[1]) for entry in entries}
    return bool(names.intersection(allowed))


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int], ...]:
    """What tells a rewritten file: inode (a rename), size and mtime in ns (an in-place write)."""
    out = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            out.append((-1, -1, -1))
        else:
            out.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class TlsSource:
    """The context new connections get. ``current()`` re-reads the files when they changed (checked at
    most every ``check_every`` seconds) or after ``request_reload()`` (SIGHUP); a pair that does not
    load keeps the old context and logs ``web.tls_reload_failed`` once per change of the files."""

    def __init__(
        self,
        tls: TlsSettings,
        *,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tls = tls
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._signature = _signature(tls.files())
        self._context = build_context(tls)
        self._checked_at = clock()
        self._failed_signature: tuple[tuple[int, int, int], ...] | None = None
        self._forced = threading.Event()
        self.reloads = 0

    def request_reload(self) -> None:
        """Safe from a signal handler: only sets a flag; the next connection (or tick) reloads."""
        self._forced.set()

    def current(self) -> ssl.SSLContext:
        now = self._clock()
        forced = self._forced.is_set()
        if not forced and now - self._checked_at < self._check_every:
            return self._context
        with self._lock:
            self._checked_at = now
            forced = self._forced.is_set()
            self._forced.clear()
            signature = _signature(self.tls.files())
            if signature != self._signature or forced:
                self._reload(signature, forced)
            return self._context

    def _reload(self, signature: tuple[tuple[int, int, int], ...], forced: bool) -> None:
        try:
            context = build_context(self.tls)
        except ValueError as exc:
            if signature != self._failed_signature:
                log.error("web.tls_reload_failed", error=str(exc), kept="the previous certificate")
                self._failed_signature = signature
            return
        self._context, self._signature, self._failed_signature = context, signature, None
        self.reloads += 1
        log.info("web.tls_reloaded", cert_file=str(self.tls.cert_file), cause="sighup" if forced else "files")


# ---- basic auth ------------------------------------------------------------------------------------


@dataclass
class _Dummy:
    """A valid hash of a random password: an unknown user costs one bcrypt round too, so response time
    does not tell which user names exist. Made on first use (about 50 ms), not at import."""

    hashed: bytes | None = None

    def get(self) -> bytes:
        if self.hashed is None:
            self.hashed = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=10))
        return self.hashed


_DUMMY = _Dummy()


class BasicAuth:
    """``Authorization: Basic`` against bcrypt hashes. A verified (user, password) is remembered as an
    HMAC under a per-process random key for ``cache_seconds`` (a 1 s scrape interval must not cost a
    bcrypt round per scrape); only successes are remembered, at most ``max_cached`` of them. bcrypt
    rounds run one at a time, so wrong passwords cannot take every core."""

    def __init__(
        self,
        users: Mapping[str, bytes],
        *,
        cache_seconds: float,
        max_cached: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = dict(users)
        self._cache_seconds = cache_seconds
        self._max_cached = max_cached
        self._clock = clock
        self._key = os.urandom(32)
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        self.bcrypt_rounds = 0  # for tests: how many times bcrypt actually ran

    def __repr__(self) -> str:
        return f"BasicAuth(users={len(self._users)})"

    def check(self, header: str | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._key, user.encode() + b"\0" + password, hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user)
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], digest):
            return True
        hashed = self._users.get(user)
        with self._bcrypt:
            self.bcrypt_rounds += 1
            ok = _checkpw(password, hashed or _DUMMY.get()) and hashed is not None
        if ok and self._cache_seconds > 0:
            with self._lock:
                self._cache[user] = (digest, now + self._cache_seconds)
                self._cache.move_to_end(user)
                while len(self._cache) > self._max_cached:
                    self._cache.popitem(last=False)
        return ok


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes: no stored hash can match one
        return False


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """(user, password bytes) from ``Basic base64(user:password)``; None for anything else."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None
