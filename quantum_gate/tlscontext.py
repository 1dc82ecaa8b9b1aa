"""The listener's TLS: the ``tls_server_config`` settings (``TlsSettings``, parsed by ``webconfig``),
the server context built from them (``build_context``), re-read when the certificate or key files change
or on SIGHUP (``TlsSource``: a broken new pair keeps the old one), and ``client_allowed_sans``
(``peer_allowed``). What Python's ``ssl`` cannot honour of the exporter-toolkit format is in
docs/security.md.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

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


def build_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context from the files as they are now; ValueError naming the key when they are not
    usable (unreadable, not PEM, an encrypted key, a key that does not match the certificate)."""
    key = "tls_server_config."
    for name, path in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
        try:
            with path.open("rb") as handle:
                head = handle.read(1 << 20)
        except OSError as exc:
            raise ValueError(f"{key}{name}: cannot read {path}: {_os_reason(exc)}") from None
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


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError):
        return _os_reason(exc)
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
