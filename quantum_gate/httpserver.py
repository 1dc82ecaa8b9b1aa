"""The listener behind ``/metrics``, ``/gate``, ``/healthz`` and ``/``, built for hostile clients.

The stdlib ``ThreadingHTTPServer`` gives every connection a thread that blocks until the client has
sent its request: 200 slow clients are 200 threads, and a client that never finishes holds its thread
forever. Here one selector thread does every slow part without blocking (accepting, the TLS handshake,
collecting the request head and body), each connection against one deadline
(``http.request_timeout_seconds``) and under caps on the request line, the head and the body. Only a
complete request reaches the bounded worker pool (``http.workers``), which runs the app's stdlib
handler on the bytes already read; its socket has a write timeout, so a client that does not read its
answer holds a worker for at most ``http.write_timeout_seconds``. At most ``http.max_connections``
connections are open; past that the oldest still-unfinished request is dropped, so a flood of slow
connections cannot lock a scraper out. Every request then passes the web configuration's basic auth
and gets its extra headers (``GuardedHandler``). docs/security.md says why and what each limit does.
"""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import structlog

from quantum_gate.basicauth import BasicAuth
from quantum_gate.config import HttpSettings
from quantum_gate.request_head import examine_head, refusal_bytes
from quantum_gate.tlscontext import TlsSource, peer_allowed
from quantum_gate.webconfig import WebConfig

log = structlog.get_logger("quantum_gate.httpserver")

RECV_BYTES = 65_536
ACCEPTS_PER_WAKE = 64  # a burst of connections is taken in a few rounds, not one syscall per tick
TICK_SECONDS = 0.25  # deadlines are enforced to within this


@dataclass
class Guard:
    """What every request passes before the app sees it: basic auth, then extra response headers."""

    auth: BasicAuth | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    """A connection whose request was read in full by the selector thread: the handler's ``request``."""

    sock: socket.socket
    data: bytes


class _Writer(io.BufferedIOBase):
    """``wfile``: straight to the (blocking, write-timeout) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


class GuardedHandler(BaseHTTPRequestHandler):
    """Mixed in before the app's handler: reads the request from memory, checks the credential and adds
    the configured headers to every answer (errors and 401s included)."""

    guard: Guard = Guard()

    def setup(self) -> None:  # the stdlib's hook; the request is already in memory
        request: Request = self.request
        self.connection = request.sock
        self.rfile = io.BytesIO(request.data)
        self.wfile = _Writer(request.sock)

    def finish(self) -> None:
        self.rfile.close()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        auth = self.guard.auth
        if auth is None or auth.check(self.headers.get("Authorization")):
            return True
        body = b"unauthorized: this listener needs a user and password (basic auth)\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="quantum-gate", charset="UTF-8"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True
        return False

    def end_headers(self) -> None:
        for name, value in self.guard.headers:
            self.send_header(name, value)
        super().end_headers()


@dataclass
class _Connection:
    sock: socket.socket
    address: Any
    deadline: float
    handshaking: bool
    buffer: bytearray = field(default_factory=bytearray)
    needed: int | None = None  # head + declared body, once the head is complete


def listen_socket(host: str, port: int) -> socket.socket:
    """Bound and listening now, so a busy port fails the start (OSError) before anything else runs."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # socketserver's default backlog is 5: a burst of scrapers beyond it has its SYNs dropped and
    # retried after 1, 3, 7 s (tests/test_hardening_load.py saw 7.7 s scrapes with 50 scrapers).
    listener = socket.create_server((host, port), family=family, backlog=128)
    listener.setblocking(False)
    return listener


class HardenedServer:
    """Selector thread + bounded worker pool; ``handler`` is a stdlib ``BaseHTTPRequestHandler``."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        host: str,
        port: int,
        limits: HttpSettings,
        web: WebConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self.tls = TlsSource(web.tls) if web is not None and web.tls is not None else None
        auth = None
        if web is not None and web.users:
            auth = BasicAuth(web.users, cache_seconds=limits.auth_cache_seconds)
        guard = Guard(auth, web.headers if web is not None else ())
        self._handler = type("Guarded" + handler.__name__, (GuardedHandler, handler), {"guard": guard})
        self._listener = listen_socket(host, port)
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="http-worker")
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._connections: dict[int, _Connection] = {}  # insertion order = accept order = deadline order
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._accept_failing = False
        self._accept_resumes_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._thread.start()

    def reload_tls(self) -> None:
        """SIGHUP: re-read the certificate and key now (safe from a signal handler: sets a flag)."""
        if self.tls is not None:
            self.tls.request_reload()
            self._wake()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for connection in list(self._connections.values()):
            self._drop(connection)
        self._selector.close()
        self._listener.close()
        self._wake_read.close()
        self._wake_write.close()
        # Requests already read are still answered (each bounded by the write timeout), so every
        # accepted socket is closed by its worker; nothing new reaches the pool.
        self._pool.shutdown(wait=False)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # stopped already, or a wake-up is pending anyway
            self._wake_write.send(b"\0")

    # ---- the selector thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=TICK_SECONDS):
                try:
                    self._event(key.data)
                except Exception:  # broad on purpose: one odd client must not end the listener thread
                    log.warning("http.event_failed", exc_info=True)
                    if isinstance(key.data, _Connection):
                        self._drop(key.data)
            self._expire()
            if self._accept_resumes_at is not None and self._clock() >= self._accept_resumes_at:
                self._accept_resumes_at = None
                self._selector.register(self._listener, selectors.EVENT_READ, "listen")
            if self.tls is not None:
                self.tls.current()  # applies a SIGHUP or a changed file even while nobody connects

    def _event(self, data: Any) -> None:
        if data == "listen":
            self._accept()
        elif data == "wake":
            self._drain_wake()
        else:
            self._progress(data)

    def _drain_wake(self) -> None:
        try:
            while self._wake_read.recv(512):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the backlog keeps the client until we can
                self._pause_accepting(exc)
                return
            if self._accept_failing:
                self._accept_failing = False
                log.info("http.accept_recovered")
            if not self._make_room():
                sock.close()
                continue
            sock.setblocking(False)
            tls = self.tls
            if tls is not None:
                try:
                    sock = tls.current().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except (OSError, ValueError):  # the client is gone already
                    sock.close()
                    continue
            deadline = self._clock() + self.limits.request_timeout_seconds
            connection = _Connection(sock, address, deadline, handshaking=tls is not None)
            self._connections[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)

    def _pause_accepting(self, exc: OSError) -> None:
        """The listener stays readable while accept() fails: without a pause the loop would spin and
        log without end. Log the change once, and retry after a tick."""
        if not self._accept_failing:
            self._accept_failing = True
            log.warning("http.accept_failed", error=exc.strerror or type(exc).__name__)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._listener)
        self._accept_resumes_at = self._clock() + TICK_SECONDS

    def _make_room(self) -> bool:
        """Below ``max_connections`` open (collecting + being answered), or make it so by dropping the
        oldest connection still collecting its request: the one closest to its deadline anyway."""
        with self._lock:
            in_flight = self._in_flight
        if len(self._connections) + in_flight < self.limits.max_connections:
            return True
        if not self._connections:
            return False
        self._drop(next(iter(self._connections.values())))
        return True

    def _expire(self) -> None:
        now = self._clock()
        for connection in list(self._connections.values()):
            if connection.deadline > now:
                break  # accept order is deadline order
            self._drop(connection)

    def _progress(self, connection: _Connection) -> None:
        sock = connection.sock
        try:
            if connection.handshaking:
                assert isinstance(sock, ssl.SSLSocket)
                sock.do_handshake()
                connection.handshaking = False
                if self.tls is not None and not peer_allowed(sock, self.tls.tls.client_allowed_sans):
                    self._drop(connection)
                    return
                self._selector.modify(sock, selectors.EVENT_READ, connection)
            while True:
                chunk = sock.recv(RECV_BYTES)
                if not chunk:  # the client gave up (or sent plain HTTP to TLS and closed)
                    self._drop(connection)
                    return
                connection.buffer += chunk
                if self._examine(connection):
                    return
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, connection)
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, connection)
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError):  # a failed handshake (plain HTTP to TLS, no client cert), a reset
            self._drop(connection)

    def _examine(self, connection: _Connection) -> bool:
        """True once the connection left the selector: dispatched, or refused for a cap."""
        if connection.needed is None:
            refusal = self._examine_head(connection)
            if refusal is not None:
                return self._refuse(connection, *refusal)
            if connection.needed is None:
                return False  # the head is not complete yet
        if len(connection.buffer) >= connection.needed:
            return self._dispatch(connection)
        return False

    def _examine_head(self, connection: _Connection) -> tuple[int, str] | None:
        """A refusal for a cap, or None; sets ``needed`` once the head is complete."""
        refusal, needed = examine_head(connection.buffer, self.limits)
        connection.needed = needed
        return refusal

    def _refuse(self, connection: _Connection, status: int, reason: str) -> bool:
        headers = self._handler.guard.headers  # type: ignore[attr-defined]
        with contextlib.suppress(OSError, ValueError):  # best effort: non-blocking, and the answer is small
            connection.sock.send(refusal_bytes(status, reason, headers))
        self._drop(connection)
        return True

    def _dispatch(self, connection: _Connection) -> bool:
        sock = connection.sock
        self._forget(connection)
        sock.setblocking(True)
        sock.settimeout(self.limits.write_timeout_seconds)
        with self._lock:
            self._in_flight += 1
        try:
            self._pool.submit(self._serve, sock, bytes(connection.buffer), connection.address)
        except RuntimeError:  # the pool is shut down: we are stopping
            self._finished(sock)
        return True

    def _forget(self, connection: _Connection) -> None:
        self._connections.pop(connection.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)

    def _drop(self, connection: _Connection) -> None:
        self._forget(connection)
        connection.sock.close()

    # ---- the workers ---------------------------------------------------------------------------

    def _serve(self, sock: socket.socket, data: bytes, address: Any) -> None:
        try:
            self._handler(Request(sock, data), address, self)
        except Exception:  # broad on purpose: one broken exchange must not take a worker with it
            log.debug("http.exchange_failed", exc_info=True)
        finally:
            self._finished(sock)

    def _finished(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_WR)
        sock.close()
        with self._lock:
            self._in_flight -= 1
