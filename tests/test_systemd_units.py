"""The shipped systemd units: hardened (systemd-analyze security <= 1.5), valid (systemd-analyze verify),
and still able to do what the daemon needs: sd_notify, the watchdog, the credential, reports in the
state directory, and `systemctl show` over the system bus (AF_UNIX, /run/dbus visible)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_tool

from quantum_gate.cli import build_parser
from quantum_gate.config import DaemonSettings

UNITS = REPO / "deploy" / "systemd"
MAIN, TEMPLATE = UNITS / "quantum-gate.service", UNITS / "quantum-gate@.service"
MAX_EXPOSURE = 1.5


def directives(unit: Path) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, in order (a key may repeat)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?", value)
    assert match, f"unsupported time span {value!r}"
    scale = {"ms": 0.001, None: 1, "s": 1, "min": 60, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


@pytest.mark.parametrize("unit", [MAIN, TEMPLATE], ids=lambda p: p.name)
def test_security_exposure_is_at_most_1_5(unit: Path) -> None:
    analyze = require_tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, done.stdout


@pytest.mark.parametrize("unit", [MAIN, TEMPLATE], ids=lambda p: p.name)
def test_the_unit_keeps_what_the_daemon_needs(unit: Path) -> None:
    d = directives(unit)
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert d["DynamicUser"] == ["yes"] or d.get("User"), "unprivileged: DynamicUser or a dedicated user"
    # The watchdog is fed after every evaluation: at least two intervals must fit in it.
    assert seconds(d["WatchdogSec"][0]) >= 2 * DaemonSettings().interval_seconds
    assert d["StateDirectory"][0].startswith("quantum-gate")
    credentials = dict(item.split(":", 1) for item in d["LoadCredential"])
    assert set(credentials) == {"redis-password", "web-config.yml", "web.crt", "web.key"}
    assert all(path.startswith("/etc/quantum-gate/") for path in credentials.values())
    # The web credentials have empty defaults: the unit starts without them, as plain HTTP (an empty web
    # configuration); the Redis password has none, so a missing file stops the start as before.
    assert sorted(d["SetCredential"]) == [
        "web-config.yml:{}",
        "web.crt:not-configured",
        "web.key:not-configured",
    ]
    # `systemctl show` talks to /run/dbus/system_bus_socket: AF_UNIX allowed, /run/dbus visible.
    families = " ".join(d["RestrictAddressFamilies"]).split()
    assert "AF_UNIX" in families and not any(f.startswith("~") for f in families)
    hidden = " ".join(d.get("InaccessiblePaths", []) + d.get("TemporaryFileSystem", []))
    assert "/run" not in hidden
    assert d.get("PrivateNetwork", ["no"]) == ["no"]  # Redis is reached over the network
    # The command line is one the CLI accepts, and it writes reports into the state directory.
    argv = shlex.split(d["ExecStart"][0])
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run"
    state = "/var/lib/" + d["StateDirectory"][0]
    assert str(args.report_dir).startswith(state + "/")
    assert str(args.config).startswith("/etc/quantum-gate/")
    assert str(args.web_config_file) == "%d/web-config.yml"  # %d: the credentials directory


def test_the_template_selects_its_config_by_instance() -> None:
    d = directives(TEMPLATE)
    assert "--config /etc/quantum-gate/%i.yaml" in d["ExecStart"][0]
    assert d["LoadCredential"] == [
        "redis-password:/etc/quantum-gate/%i.redis-password",
        "web-config.yml:/etc/quantum-gate/%i.web-config.yml",
        "web.crt:/etc/quantum-gate/tls/%i.web.crt",
        "web.key:/etc/quantum-gate/tls/%i.web.key",
    ]
    assert "%i" in d["StateDirectory"][0]
    main, template = directives(MAIN), directives(TEMPLATE)
    differing = {key for key in set(main) | set(template) if main.get(key) != template.get(key)}
    # Same hardening; only the per-instance paths and the description differ.
    assert differing == {"Description", "ExecStart", "StateDirectory", "WorkingDirectory", "LoadCredential"}


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    true = shutil.which("true")
    assert true is not None
    for unit in (MAIN, TEMPLATE):  # verify wants ExecStart to exist: point it at /bin/true here
        text = unit.read_text(encoding="utf-8").replace("/opt/quantum-gate/.venv/bin/quantum-gate", true)
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", "--no-pager", "quantum-gate.service", "quantum-gate@engine-b.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 and "Failed to" in done.stderr and "quantum-gate" not in done.stderr:
        pytest.skip(f"systemd-analyze verify does not work offline here: {done.stderr.strip()[:200]}")
    assert (done.returncode, done.stderr) == (0, "")
