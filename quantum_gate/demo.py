"""``quantum-gate demo`` (``make run``): the real daemon on an embedded Redis, fed by a simulated engine.

Three parts in one process, all on loopback:

* an embedded Redis-compatible server (fakeredis' TCP server on a free port; the machine's own Redis is
  never touched, and ``QUANTUM_GATE_*`` settings in the environment are deliberately ignored);
* a simulated ``quantum-ai-engine`` that XADDs entries in the producer's real format (the AI-engine
  envelope with a ``model_breakdown``, the rule ``fallback`` pseudo-model, and now and then an entry
  from another producer) at an accelerated rate. It tells its story through the interface the daemon
  uses in production: a stand-in ``systemctl`` first on PATH answers ``systemctl show`` from a state
  file that the simulator rewrites on every "restart";
* the real daemon (``quantum_gate.daemon.Daemon``) with ordinary settings pointing at that server.

The story: the engine has been running collapsed (lgbm pinned at 0.75, nhits and patchtst in a HOLD
dead zone at 0.5, xgb overconfident in a band of 0.93-0.999 too narrow for the std and P10-P90 checks)
and the gate FAILs on all four models; it restarts with the patch (a new cutover); the post window fills
with healthy events and PASSes at 200; it restarts again with nhits collapsed onto a rule constant and
the gate FAILs 200 events later. Ctrl-C stops the daemon, the simulator and the server; exit 0.

The entries come from ``demo_engine``, the unit, the acts and the simulator that plays them from
``demo_story`` (``demo_kubernetes`` for ``--engine kubernetes``); this module runs the parts together
and narrates on the console.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import redis

from quantum_gate import logs
from quantum_gate.config import Settings, parse_listen
from quantum_gate.daemon import Daemon
from quantum_gate.demo_kubernetes import KubernetesSimulator, SimulatedDeployment, banner_story
from quantum_gate.demo_story import STREAM, UNIT, SimulatedUnit, Simulator, planned_times

MAX_SPEED = 1000.0


class Narrator(threading.Thread):
    """Says what the daemon concluded, as it happens: cutovers, progress, verdicts."""

    def __init__(self, daemon: Daemon, say: Callable[[str], None]) -> None:
        super().__init__(name="demo-narrator", daemon=True)
        self.daemon_under_watch = daemon
        self.say = say
        self.stop = threading.Event()

    def run(self) -> None:
        cutovers, verdict, milestone = 0, None, 0
        while not self.stop.wait(0.25):
            snap = self.daemon_under_watch.snapshot()
            if snap.cutovers.cutovers_total != cutovers and snap.cutovers.cutover is not None:
                cutovers, milestone = snap.cutovers.cutovers_total, 0
                invocation = (snap.cutovers.cutover.invocation_id or "")[:12]
                who = snap.cutovers.cutover.label or f"InvocationID {invocation}..."
                self.say(
                    f"daemon adopted cutover #{cutovers}: {snap.cutovers.cutover.timestamp} "
                    f"({who}; quantum_gate_cutovers_total {cutovers}); "
                    f"post window {snap.windows.events.get('post', 0)} events, "
                    f"baseline {snap.windows.events.get('pre', 0)}"
                )
            post = snap.windows.events.get("post", 0)
            minimum = snap.settings.gate.min_events
            step = post * 4 // minimum if post < minimum else 4
            if cutovers > 1 and 0 < step < 4 and step > milestone:
                milestone = step
                rate = snap.windows.rate_per_minute or 0.0
                eta = (minimum - post) / rate * 60 if rate else None
                self.say(
                    f"post window {post}/{minimum} events, {rate:.0f}/min"
                    + (f", gate in about {eta:.0f}s" if eta is not None else "")
                )
            result = snap.evaluation.result
            if result is not None and result.verdict != verdict:
                verdict = result.verdict
                why = "; ".join(result.reasons[:3]) + (" ..." if len(result.reasons) > 3 else "")
                self.say(f"gate verdict {verdict}" + (f": {why}" if why else " (every check passes)"))


# ---- running it --------------------------------------------------------------------------------------


class EmbeddedRedis:
    """fakeredis' TCP server on a free loopback port, served by a background thread."""

    def __init__(self) -> None:
        self.server = fakeredis.TcpFakeServer(("127.0.0.1", 0))
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name="demo-redis", daemon=True
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def demo_settings(
    redis_url: str, listen: str, report_dir: Path, ledger: Path | None = None, engine: str = "systemd"
) -> Settings:
    """Ordinary settings, built here rather than from QUANTUM_GATE_* so nothing can point the demo at a
    real Redis. Short interval and poll so the story moves; a baseline the size of one act."""
    source: dict[str, Any] = {"unit": UNIT}
    if engine == "kubernetes":
        source = {"source": "kubernetes", "deployment": "quantum-trader/ai-engine"}
    return Settings.model_validate(
        {
            "redis": {"url": redis_url, "stream": STREAM, "block_ms": 500},
            "cutover": {**source, "poll_seconds": 1.0},
            "windows": {"baseline": 250, "rate_horizon_seconds": 60},
            "daemon": {"listen": listen, "interval_seconds": 2.0, "report_dir": report_dir},
            "ledger": {"path": ledger},
        }
    )


def _port_free(listen: str) -> str | None:
    try:
        host, port = parse_listen(listen)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def _banner(
    listen: str, redis_url: str, reports: Path, speed: float, ledger: Path, *, engine: str = "systemd"
) -> str:
    base = f"http://{listen}"
    times = planned_times(speed)
    fail_at = times[4]

    def clock(seconds: float) -> str:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"

    if engine == "kubernetes":
        story = banner_story(clock, times)
    else:
        story = [
            f"  {clock(times[0])}  the engine has run collapsed for ~1.5 h: lgbm pinned at 0.75, nhits and "
            "patchtst in a HOLD dead zone at 0.5, xgb overconfident, squeezed into 0.93-0.999. "
            "The gate FAILs on all four.",
            f"  {clock(times[1])}  it restarts with the patch: a new cutover "
            "(quantum_gate_cutovers_total 2); the post window starts from zero.",
            f"  {clock(times[2])}  the post window reaches 200 healthy events: "
            "the gate PASSes and writes a report.",
            f"  {clock(times[3])}  it restarts again with a regression: "
            "nhits falls back to its rules, pinned at 0.65.",
            f"  {clock(fail_at)}  200 events later the gate FAILs on nhits. The engine keeps writing slowly.",
        ]
    return "\n".join(
        [
            "quantum-gate demo: the real daemon, an embedded Redis and a simulated quantum-ai-engine",
            "",
            f"  status page  {base}/",
            f"  metrics      {base}/metrics",
            f"  gate JSON    {base}/gate      (the check --json object; what a rollout tool polls)",
            f"  health       {base}/healthz",
            f"  Redis        {redis_url}  (embedded, loopback only; the Redis on 6379 is never touched)",
            f"  reports      {reports}",
            f"  ledger       {ledger}  (quantum-gate history --ledger {ledger})",
            "",
            f"What happens (about {clock(fail_at)} at --speed {speed:g}):",
            *story,
            "",
            "Ctrl-C stops everything. The daemon's own log follows on stderr.",
            "",
        ]
    )


def run_demo(
    listen: str = "127.0.0.1:9731",
    speed: float = 1.0,
    report_dir: Path | None = None,
    ledger: Path | None = None,
    engine: str = "systemd",
) -> int:
    if not 0 < speed <= MAX_SPEED:
        print(f"quantum-gate: demo: --speed must be > 0 and <= {MAX_SPEED:g}", file=sys.stderr)
        return 1
    busy = _port_free(listen)
    if busy is not None:
        print(
            f"quantum-gate: demo: cannot listen on {listen}: {busy} (try --listen 127.0.0.1:9732)",
            file=sys.stderr,
        )
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="quantum-gate-demo-"))
    reports = report_dir or workdir / "reports"
    ledger = ledger or workdir / "ledger.sqlite3"
    started = time.monotonic()

    def say(text: str) -> None:
        elapsed = time.monotonic() - started
        # One write per line, so a narration line is not split by the daemon's log lines on a terminal.
        sys.stdout.write(f"[demo {int(elapsed // 60)}:{int(elapsed % 60):02d}] {text}\n")
        sys.stdout.flush()

    server = EmbeddedRedis()
    server.start()
    old_path = os.environ.get("PATH", "")
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)
    simulator: Simulator | None = None
    narrator: Narrator | None = None
    try:
        unit, simulator = _engine(engine, workdir, client, speed, say)
        os.environ["PATH"] = f"{unit.bin_dir}{os.pathsep}{old_path}"  # the daemon's systemctl/kubectl is ours
        simulator.write_backlog(time.time())
        logs.configure("info")
        daemon = Daemon(demo_settings(server.url, listen, reports, ledger, engine))
        print(_banner(listen, server.url, reports, speed, ledger, engine=engine), flush=True)
        narrator = Narrator(daemon, say)
        simulator.start()
        narrator.start()
        code = daemon.run()
    finally:
        for thread in (simulator, narrator):
            if thread is not None:
                thread.stop.set()
        for thread in (simulator, narrator):
            if thread is not None and thread.is_alive():
                thread.join(timeout=5)
        client.close()
        server.stop()
        os.environ["PATH"] = old_path
        shutil.rmtree(workdir / "bin", ignore_errors=True)
        shutil.rmtree(workdir / "cluster", ignore_errors=True)
        unit_state = workdir / "unit-state"
        unit_state.unlink(missing_ok=True)
    kept = reports.is_dir() and any(reports.iterdir())
    if report_dir is None and not kept and ledger.parent == workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    written = simulator.written if simulator is not None else 0
    print(
        f"demo stopped: {written} live entries written"
        + (f"; reports kept in {reports}" if kept else "")
        + (f"; history: quantum-gate history --ledger {ledger}" if ledger.exists() else "")
        + ".",
        flush=True,
    )
    return code


def _engine(
    engine: str, workdir: Path, client: redis.Redis, speed: float, say: Callable[[str], None]
) -> tuple[Any, Simulator]:
    """The simulated deployment (a systemd unit, or a Kubernetes Deployment) and its simulator."""
    if engine == "kubernetes":
        deployment = SimulatedDeployment(workdir)
        return deployment, KubernetesSimulator(client, deployment, speed, say)
    unit = SimulatedUnit(workdir)
    return unit, Simulator(client, unit, speed, say)
