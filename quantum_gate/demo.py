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
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fakeredis
import redis

from quantum_gate import logs
from quantum_gate.config import Settings, parse_listen
from quantum_gate.daemon import Daemon

# The keys the producer appends after `regime` with these values in every fixture entry (RL and
# sizing details). The gate ignores them; the demo and the benchmark write them so that payloads have
# the producer's real size and shape.
PRODUCER_TAIL_KEYS: dict[str, object] = {
    "rl_influence_enabled": False,
    "rl_gate_pass": False,
    "rl_gate_reason": "rl_disabled",
    "rl_action": None,
    "rl_confidence": 0.0,
    "rl_version": None,
    "rl_policy_age_sec": None,
    "rl_weight_effective": 0.0,
    "rl_effect": "none",
    "ai_leverage": 56.00000000000001,
    "ai_size_usd": 152.00000000000003,
    "ai_harvest_policy": {"mode": "swing", "trail_pct": 1.0, "max_time_sec": 3600, "partial_close_pct": 0.0},
}


STREAM = "quantum:stream:trade.intent"
UNIT = "quantum-ai-engine.service"
MAXLEN = 10_000  # the producer's own XADD ... MAXLEN ~ 10000
MAX_SPEED = 1000.0

SYMBOLS = {
    "BTCUSDT": 71_474.94,
    "ETHUSDT": 3_912.5,
    "SOLUSDT": 187.31,
    "BNBUSDT": 712.4,
    "XRPUSDT": 2.418,
    "DOGEUSDT": 0.3921,
    "NEARUSDT": 1.465,
    "A2ZUSDT": 0.000983,
}

STANDIN_SYSTEMCTL = """#!/bin/sh
# quantum-gate demo: a stand-in for systemctl. It answers `systemctl show` for the simulated
# quantum-ai-engine from a state file that the simulator rewrites on every restart.
[ "$1" = show ] || {{ echo "demo systemctl: only 'show' is simulated" >&2; exit 1; }}
exec cat {state}
"""


# ---- the unit: what `systemctl show` says -----------------------------------------------------------


class SimulatedUnit:
    """The engine's systemd unit as the stand-in ``systemctl`` reports it (unix timestamps)."""

    def __init__(self, directory: Path) -> None:
        self.bin_dir = directory / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.state_file = directory / "unit-state"
        script = self.bin_dir / "systemctl"
        script.write_text(STANDIN_SYSTEMCTL.format(state=shlex.quote(str(self.state_file))), encoding="utf-8")
        script.chmod(0o755)
        self.restarts = -1
        self.invocation = ""
        self.entered = 0

    def start(self, entered: int) -> None:
        """A (re)start at ``entered`` (whole epoch seconds, as systemd reports it): a new InvocationID."""
        self.restarts += 1
        self.invocation = uuid.uuid4().hex
        self.entered = entered
        text = (
            f"InvocationID={self.invocation}\n"
            f"ActiveEnterTimestamp=@{entered}\n"
            "ActiveState=active\n"
            f"NRestarts={self.restarts}\n"
        )
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.state_file)


# ---- the engine: entries in the producer's format ----------------------------------------------------

HEALTHY = {  # model -> (variant, mean confidence, spread, action weights BUY/SELL/HOLD)
    "xgb": ("xgboost", 0.66, 0.12, (0.37, 0.35, 0.28)),
    "lgbm": ("lgbm", 0.61, 0.10, (0.36, 0.36, 0.28)),
    "nhits": ("nhits", 0.58, 0.09, (0.34, 0.33, 0.33)),
    "patchtst": ("patchtst", 0.56, 0.10, (0.33, 0.32, 0.35)),
}
ACTIONS = ("BUY", "SELL", "HOLD")


class Engine:
    """Builds entries the way quantum-ai-engine writes them; ``mode`` is the deployed behaviour."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - simulated market data, not security

    def vote(self, model: str, mode: str) -> dict[str, Any]:
        rng = self.rng
        if mode == "collapsed" and model == "lgbm":
            roll = rng.random()
            value = 0.75 if roll < 0.73 else 0.5 if roll < 0.88 else 0.65 if roll < 0.97 else 1.05
            action = "BUY" if rng.random() < 0.8 else "SELL"
            return {"action": action, "confidence": value, "model": "lgbm_fallback_rules"}
        if mode == "collapsed" and model in {"nhits", "patchtst"}:
            dead = rng.random() < (0.9 if model == "nhits" else 0.93)
            action = "HOLD" if dead else rng.choice(("BUY", "SELL"))
            value = 0.5 if dead else (0.65 if model == "nhits" else rng.uniform(0.45, 0.62))
            if model == "nhits":
                return {"action": action, "confidence": value, "model": "nhits_fallback_rules"}
            return {"action": action, "confidence": value, "model": "patchtst_shadow", "shadow": True}
        if mode == "collapsed" and model == "xgb":
            # Overconfident, as the producer's own entries show xgb near 0.996: std ~0.02 and P10-P90 ~0.06,
            # so xgb fails the std and P10-P90 checks in act 1 too (the banner and quickstart say so).
            return {"action": rng.choice(ACTIONS), "confidence": rng.uniform(0.93, 0.999), "model": "xgboost"}
        if mode == "regressed" and model == "nhits":
            action = "BUY" if rng.random() < 0.88 else "SELL"
            return {"action": action, "confidence": 0.65, "model": "nhits_fallback_rules"}
        variant, mean, spread, weights = HEALTHY[model]
        confidence = min(max(rng.gauss(mean, spread), 0.02), 0.995)
        return {"action": rng.choices(ACTIONS, weights)[0], "confidence": confidence, "model": variant}

    def ai_entry(self, mode: str, published: datetime) -> dict[str, str]:
        """The AI-engine envelope: event_type, payload (Python json.dumps), trace_id, correlation_id,
        a naive UTC publisher timestamp, source."""
        rng = self.rng
        breakdown = {model: self.vote(model, mode) for model in HEALTHY}
        buys = [v for v in breakdown.values() if v["action"] == "BUY"]
        sells = [v for v in breakdown.values() if v["action"] == "SELL"]
        winners = buys if len(buys) > len(sells) else sells if len(sells) > len(buys) else []
        if len(winners) >= 2:
            side = winners[0]["action"]
            confidence = sum(v["confidence"] for v in winners) / len(winners)
            consensus = len(winners)
        else:  # no consensus: the ensemble's rule fallback decides (0.68 or 0.72)
            side = rng.choice(("BUY", "SELL"))
            confidence = rng.choice((0.68, 0.72))
            consensus = 1
            breakdown["fallback"] = {
                "action": side,
                "confidence": confidence,
                "reason": "consensus_not_met_or_hold_signal",
                "triggered_by": rng.choice(("rsi_macd_rules", "testnet_hash_pattern")),
            }
        symbol = rng.choice(list(SYMBOLS))
        price = SYMBOLS[symbol] * rng.uniform(0.98, 1.02)
        stop, take = (0.99, 1.02) if side == "BUY" else (1.01, 0.98)
        decided = published.timestamp() - rng.uniform(0.5, 40.0)
        payload = {
            "symbol": symbol,
            "side": side,
            "position_size_usd": 50.0,
            "leverage": 5,
            "entry_price": price,
            "stop_loss": price * stop,
            "take_profit": price * take,
            "confidence": confidence,
            "timestamp": datetime.fromtimestamp(decided, tz=UTC).isoformat(),
            "model": "ensemble",
            "meta_strategy": "default",
            "consensus_count": consensus,
            "total_models": 4,
            "model_breakdown": breakdown,
            "atr_value": round(rng.uniform(0.0, 0.05), 4),
            "volatility_factor": 1.0,
            "exchange_divergence": rng.uniform(0.0, 25.0),
            "funding_rate": rng.uniform(-5e-5, 5e-5),
            "regime": "unknown",
            **PRODUCER_TAIL_KEYS,
        }
        return {
            "event_type": "trade.intent",
            "payload": json.dumps(payload),
            "trace_id": "",
            "correlation_id": str(uuid.uuid4()),
            "timestamp": _naive_utc(published.timestamp() - rng.uniform(12.0, 23.0)),
            "source": "ai-engine",
        }

    def other_entry(self, published: datetime) -> dict[str, str] | None:
        """Now and then another producer shares the stream (skipped by the gate, and counted)."""
        roll = self.rng.random()
        symbol = self.rng.choice(list(SYMBOLS))
        if roll < 0.04:  # the trading bot's envelope: no model_breakdown
            body = {
                "symbol": symbol,
                "side": "BUY",
                "confidence": 0.72,
                "entry_price": SYMBOLS[symbol],
                "position_size_usd": 200.0,
                "leverage": 1,
                "timestamp": _naive_utc(published.timestamp()),
                "model": "ensemble",
                "reason": "AI signal",
            }
            return {
                "event_type": "trade.intent",
                "payload": json.dumps(body),
                "timestamp": _naive_utc(published.timestamp()),
                "source": "trading-bot",
            }
        if roll < 0.05:  # the flat variant: no event_type at all
            return {
                "intent_type": "open",
                "symbol": symbol,
                "action": "BUY",
                "side": "LONG",
                "confidence": "0.7",
            }
        return None


def _naive_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).replace(tzinfo=None).isoformat()


# ---- the story ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    mode: str  # how the deployed engine behaves: collapsed | patched | regressed
    events: int | None  # accepted (AI-engine) entries in this act; None = until stopped
    per_second: float  # at --speed 1
    restart: str | None = None  # the act opens with a restart of the unit, told like this
    min_seconds: float = 0.0  # wall-clock floor, so that a short act stays visible at high --speed


STORY = (
    Act("collapsed", 24, 1.2),
    Act("patched", 200, 2.5, restart="restarts with the patch"),
    Act("patched", 60, 2.5, min_seconds=4.0),
    Act(
        "regressed",
        200,
        2.5,
        restart="restarts with a regression: nhits falls back to its rules, pinned at 0.65",
    ),
    Act("regressed", None, 0.5),
)
RESTART_DOWNTIME = 2.0  # seconds at --speed 1 during which a restarting engine writes nothing
BACKLOG_HEALTHY, BACKLOG_COLLAPSED, BACKLOG_SPACING = 150, 230, 25.0  # the history before the demo starts


def planned_times(speed: float) -> list[float]:
    """When each act starts, in seconds from the start (an estimate for the banner)."""
    times, at = [], 0.0
    for act in STORY:
        if act.restart:
            at += max(RESTART_DOWNTIME / speed, 1.0) + 0.5
        times.append(at)
        if act.events is not None:
            at += max(act.events / (act.per_second * speed), act.min_seconds)
    return times


class Simulator(threading.Thread):
    """Writes the backlog, then plays ``STORY`` live: XADDs at the act's rate, restarts the unit."""

    backlog_modes = ("patched", "collapsed")  # the older deployment, then the one running at T0

    def __init__(self, client: redis.Redis, unit: Any, speed: float, say: Callable[[str], None]) -> None:
        super().__init__(name="demo-engine", daemon=True)
        self.client = client
        self.unit = unit
        self.speed = speed
        self.say = say
        self.engine = Engine()
        self.stop = threading.Event()
        self.written = 0
        self.error: BaseException | None = None
        self.story: tuple[Act, ...] = STORY

    def write_backlog(self, now: float) -> None:
        """The history: a healthy older deployment, then the collapsed one still running (started at
        T0, the first cutover the daemon finds). Explicit IDs in the past, oldest first."""
        collapsed_from = now - BACKLOG_COLLAPSED * BACKLOG_SPACING - 30
        t0 = int(collapsed_from) - 10
        healthy_from = t0 - 30 - BACKLOG_HEALTHY * BACKLOG_SPACING
        previous_ms = 0
        older, running = self.backlog_modes
        for mode, count, start in (
            (older, BACKLOG_HEALTHY, healthy_from),
            (running, BACKLOG_COLLAPSED, collapsed_from),
        ):
            for index in range(count):
                at = start + index * BACKLOG_SPACING + self.engine.rng.uniform(0, BACKLOG_SPACING * 0.8)
                ms = max(int(at * 1000), previous_ms + 1)
                previous_ms = ms + 1
                published = datetime.fromtimestamp(ms / 1000, tz=UTC)
                other = self.engine.other_entry(published)
                if other is not None:
                    self._xadd(other, entry_id=f"{ms}-0")
                self._xadd(self.engine.ai_entry(mode, published), entry_id=f"{ms}-1")
        self.unit.start(t0)

    def _xadd(self, fields: dict[str, str], entry_id: str = "*") -> None:
        # redis-py types the field map invariantly over str | bytes | ...; a dict[str, str] is fine.
        self.client.xadd(STREAM, fields, id=entry_id, maxlen=MAXLEN, approximate=True)  # type: ignore[arg-type]

    def run(self) -> None:
        try:
            for act in self.story:
                if self.stop.is_set():
                    return
                if act.restart:
                    self._restart(act.restart)
                self._play(act)
        except redis.RedisError as exc:  # the server went away under us: the demo is ending
            if not self.stop.is_set():
                self.error = exc
                self.say(f"simulated engine stopped: {exc}")

    def _restart(self, story: str) -> None:
        self.say(f"engine {story}: down for a moment, then a new InvocationID and ActiveEnterTimestamp")
        self.stop.wait(max(RESTART_DOWNTIME / self.speed, 0.2))
        entered = int(time.time()) + 1  # systemd reports whole seconds; nothing is written meanwhile
        while not self.stop.is_set() and time.time() < entered + 0.02:
            self.stop.wait(0.02)
        self.unit.start(entered)

    def _play(self, act: Act) -> None:
        """XADD the act's accepted entries at its rate (plus the odd entry of another producer); an
        act with ``min_seconds`` goes on at the same rate until that much wall-clock time has passed."""
        rate = act.per_second * self.speed
        deadline = time.monotonic() + act.min_seconds
        written = 0
        while not self.stop.is_set():
            if act.events is not None and written >= act.events and time.monotonic() >= deadline:
                return
            now = datetime.now(UTC)
            other = self.engine.other_entry(now)
            if other is not None:
                self._xadd(other)
            self._xadd(self.engine.ai_entry(act.mode, now))
            written += 1
            self.written += 1
            self.stop.wait(self.engine.rng.uniform(0.5, 1.5) / rate)


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
            if snap.cutovers_total != cutovers and snap.cutover is not None:
                cutovers, milestone = snap.cutovers_total, 0
                invocation = (snap.cutover.invocation_id or "")[:12]
                who = snap.cutover.label or f"InvocationID {invocation}..."
                self.say(
                    f"daemon adopted cutover #{cutovers}: {snap.cutover.timestamp} "
                    f"({who}; quantum_gate_cutovers_total {cutovers}); "
                    f"post window {snap.window_events.get('post', 0)} events, "
                    f"baseline {snap.window_events.get('pre', 0)}"
                )
            post = snap.window_events.get("post", 0)
            minimum = snap.settings.gate.min_events
            step = post * 4 // minimum if post < minimum else 4
            if cutovers > 1 and 0 < step < 4 and step > milestone:
                milestone = step
                rate = snap.rate_per_minute or 0.0
                eta = (minimum - post) / rate * 60 if rate else None
                self.say(
                    f"post window {post}/{minimum} events, {rate:.0f}/min"
                    + (f", gate in about {eta:.0f}s" if eta is not None else "")
                )
            result = snap.result
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
        from quantum_gate.demo_kubernetes import banner_story  # noqa: PLC0415 - it imports this module

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
        from quantum_gate.demo_kubernetes import (  # noqa: PLC0415 - it imports this module
            KubernetesSimulator,
            SimulatedDeployment,
        )

        deployment = SimulatedDeployment(workdir)
        return deployment, KubernetesSimulator(client, deployment, speed, say)
    unit = SimulatedUnit(workdir)
    return unit, Simulator(client, unit, speed, say)
