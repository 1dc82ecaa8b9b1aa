"""The demo's story and the deployment it plays on: the engine's systemd unit as a stand-in
``systemctl`` reports it (``SimulatedUnit``), the acts (``STORY``), and the ``Simulator`` thread that
writes the backlog and then plays the acts into the stream, restarting the unit between them.

``demo_kubernetes`` tells the same kind of story with a Deployment instead of a unit.
"""

from __future__ import annotations

import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from quantum_gate.demo_engine import Engine

STREAM = "quantum:stream:trade.intent"
UNIT = "quantum-ai-engine.service"
MAXLEN = 10_000  # the producer's own XADD ... MAXLEN ~ 10000


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
