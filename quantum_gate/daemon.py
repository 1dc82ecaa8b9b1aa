"""``quantum-gate run``: the long-running service, wired from parts with one job each.

Phases, as in uvicorn's server: ``startup`` (bind HTTP, find the cutover, start the scheduler, then the
tail thread, which backfills both windows from Redis; sd_notify READY), ``main_loop`` (wait for a stop
request; the signal handler only sets a flag), ``shutdown`` (bounded by a timeout; a second signal
forces). The parts (docs/architecture.md, "Thread model"):

* ``SharedWindows``: both windows, the cutover that splits them, the one lock;
* ``CutoverTracker``: the cutover source, the watcher, pending and adopted cutovers;
* ``Ingestor``: the tail thread, where every Redis command runs (XREAD, XINFO, backfills);
* ``Evaluator``: the scheduler, the evaluation outside the lock, alerts, reports, the hook;
* ``LedgerFeed``: the deployment ledger's current row and its writer thread.

Each part exposes an immutable state (``daemon_state``); ``Daemon.snapshot`` composes them into the
exporter's ``Snapshot`` under the lock.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog

from quantum_gate import __version__, logs
from quantum_gate.config import Settings, parse_listen
from quantum_gate.config_loading import resolve_redis_password
from quantum_gate.cutover_tracker import CutoverTracker
from quantum_gate.evaluator import EvaluationInputs, Evaluator
from quantum_gate.exporter import Snapshot
from quantum_gate.httpapp import HttpApp, HttpServer
from quantum_gate.ingestor import Ingestor
from quantum_gate.ledger_feed import LedgerFeed
from quantum_gate.shared_windows import SharedWindows
from quantum_gate.statuspage import render_status_page
from quantum_gate.systemd_notify import sd_notify
from quantum_gate.tail_progress import TailProgress
from quantum_gate.webconfig import WebConfig, load_web_config

log = structlog.get_logger("quantum_gate")


class Daemon:
    """The service: the parts, wired once, and the lifecycle phases ``run`` calls in order."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        web: WebConfig | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.web = web  # the parsed --web-config-file (TLS, basic auth, headers), None = plain HTTP
        self.stopping = threading.Event()
        self.windows = SharedWindows(settings)
        self.ledger = LedgerFeed(settings, clock, self.windows.lock)
        progress = TailProgress()
        self.evaluator = Evaluator(
            settings, self.windows, self.ledger, clock=clock, inputs=self._evaluation_inputs
        )
        self.tracker = CutoverTracker(
            settings,
            self.windows,
            progress,
            self.ledger,
            self.stopping,
            clock=clock,
            request_evaluation=self.evaluator.request,
        )
        self.ingestor = Ingestor(
            settings,
            self.windows,
            progress,
            self.tracker,
            self.stopping,
            clock=clock,
            request_evaluation=self.evaluator.request,
            events_arrived=self.evaluator.events_arrived,
        )
        self._server: HttpServer | None = None
        self._tail: threading.Thread | None = None

    def _evaluation_inputs(self) -> EvaluationInputs:
        """What the evaluation reads besides the windows (under the lock, with their copy)."""
        return EvaluationInputs(
            cutover_error=self.tracker.error,
            deployment=self.tracker.deployment_now(),
            deployment_pending=self.tracker.capture_pending(),
            retention=self.ingestor.watch.retention,
        )

    # ---- snapshot for HTTP -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The parts' frozen states, taken together under the lock (one consistent moment)."""
        with self.windows.lock:
            return Snapshot(
                version=__version__,
                settings=self.settings,
                tail=self.ingestor.state(),
                cutovers=self.tracker.state(),
                evaluation=self.evaluator.state(),
                windows=self.windows.state(self.clock),
                ledger=self.ledger.state(),
            )

    # ---- lifecycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        if not self.startup():
            return 1
        self.main_loop()
        self.shutdown()
        return 0

    def startup(self) -> bool:
        """Bind HTTP, find the cutover, start the scheduler and then the tail, wait until ready. False
        (nothing started) when the listener cannot be set up."""
        settings = self.settings
        host, port = parse_listen(settings.daemon.listen)
        source = self.tracker.source
        log.info(
            "daemon.starting",
            version=__version__,
            stream=settings.redis.stream,
            redis=settings.redis.redacted_url(),
            listen=settings.daemon.listen,
            tls=bool(self.web and self.web.tls),
            basic_auth_users=len(self.web.users) if self.web else 0,
            cutover_source="after" if source.kind == "fixed" else f"{source.kind}:{source.target}",
            interval_seconds=settings.daemon.interval_seconds,
        )
        try:
            app = HttpApp(self.snapshot, self.clock, render_status_page)
            server = HttpServer(app, host, port, settings.http, self.web)
        except OSError as exc:
            log.error(
                "daemon.failed", error=f"cannot listen on {settings.daemon.listen}: {exc.strerror or exc}"
            )
            return False
        except ValueError as exc:  # the TLS pair changed between reading the web config and now
            log.error("daemon.failed", error=f"web config: {exc}")
            return False
        self._server = server
        self._install_signals(server)
        self.ledger.start()
        server.start()
        self.tracker.await_initial_cutover()
        # The evaluation job exists before the tail can ask for an evaluation (its first request comes
        # once the backfill is done), so no request falls between the two.
        watcher = None if source.kind == "fixed" else self.tracker.watch
        self.evaluator.start(watcher, settings.cutover.poll_seconds)
        self._tail = self.ingestor.start()
        self._announce_ready(host, server.port)
        return True

    def _announce_ready(self, host: str, port: int) -> None:
        while not self.stopping.is_set() and not self.ingestor.ready.wait(0.2):
            pass
        if self.stopping.is_set():
            return
        sd_notify("READY=1")
        with self.windows.lock:
            post_events, baseline_events = len(self.windows.post), len(self.windows.pre)
        log.info(
            "daemon.ready",
            listen=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            post_events=post_events,
            baseline_events=baseline_events,
            redis_up=self.ingestor.link.up,
        )

    def main_loop(self) -> None:
        """Serve until asked to stop: the tail, the scheduler and HTTP run on their own threads."""
        self.stopping.wait()

    def shutdown(self) -> None:
        log.info("daemon.stopping")
        sd_notify("STOPPING=1")
        self.evaluator.stop()
        if self._server is not None:
            self._server.stop()
        tail = self._tail
        if tail is not None:
            tail.join(timeout=self.settings.daemon.shutdown_timeout_seconds)
        self.ledger.stop()
        log.info("daemon.stopped", clean=tail is None or not tail.is_alive())

    def _install_signals(self, server: HttpServer) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            if self.stopping.is_set():
                os._exit(1)  # the second signal forces
            self.stopping.set()

        def reload(signum: int, _frame: FrameType | None) -> None:
            server.reload_tls()  # sets a flag; the listener re-reads the certificate and key

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        if self.web is not None:  # without --web-config-file, signals stay exactly as they were
            signal.signal(signal.SIGHUP, reload)


def run_daemon(settings: Settings, log_level: str = "info") -> int:
    resolve_redis_password(settings)  # an unreadable password source is refused at start (exit 1)
    web_file = settings.http.web_config_file
    web = load_web_config(web_file) if web_file is not None else None  # a bad file: one line, exit 1
    logs.configure(log_level)
    code = Daemon(settings, web=web).run()
    # A scheduler job still running (a systemctl poll hanging up to cutover.timeout_seconds, a long
    # evaluation) sits in a pool thread that concurrent.futures joins at interpreter exit, daemon or
    # not: the stop is already bounded and logged, so whatever is left is not waited for.
    if any(t.is_alive() for t in threading.enumerate() if t is not threading.current_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
