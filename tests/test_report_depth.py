"""Report depth end to end: a collapse scenario through the real ``quantum-gate check --report-dir``
against a private redis-server, ``diagnose``, the daemon's ``/gate`` document and retention gauges,
and the bounded ``deployment_info`` capture."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis
import yaml
from conftest import RedisServer, envelope, payload, wait_until
from structlog.testing import capture_logs

from quantum_gate.cli import main
from quantum_gate.config import Settings
from quantum_gate.daemon import Daemon
from quantum_gate.exporter import make_registry
from quantum_gate.histograms import histogram
from quantum_gate.provenance import capture_deployment_info, provenance_json

CUT = 1_768_023_795_000  # 2026-01-10T05:43:15Z
ACTIONS = ("BUY", "SELL", "HOLD")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "ADAUSDT")
COLLAPSED = (
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "XRPUSDT",
)  # lgbm is pinned at HOLD 0.75 there after the cutover
MINUTE = 60_000


def healthy(k: int, offset: int) -> tuple[str, float]:
    """The k-th vote on a symbol: actions cycle BUY -> SELL -> HOLD (never a self-transition)."""
    return ACTIONS[k % 3], round(0.30 + 0.006 * ((k * 37 + offset * 11) % 100), 6)


def scenario(
    pre_per_symbol: int = 100, post_per_symbol: int = 50
) -> tuple[list[tuple[str, dict[str, str]]], list[float]]:
    """Entries round-robin over SYMBOLS, 20 s apart; returns them and lgbm's post confidences."""
    entries: list[tuple[str, dict[str, str]]] = []
    lgbm_post: list[float] = []
    pre_total = pre_per_symbol * len(SYMBOLS)
    for i in range(pre_total):
        symbol, k = SYMBOLS[i % len(SYMBOLS)], i // len(SYMBOLS)
        votes = {"xgb": healthy(k, 0), "lgbm": healthy(k, 1), "nhits": healthy(k, 2)}
        entries.append((f"{CUT - (pre_total - i) * 20_000}-0", envelope(payload(dict(votes), symbol=symbol))))
    for i in range(post_per_symbol * len(SYMBOLS)):
        symbol, k = SYMBOLS[i % len(SYMBOLS)], i // len(SYMBOLS)
        votes = {"xgb": healthy(k, 0), "lgbm": healthy(k, 1), "nhits": healthy(k, 2)}
        if symbol in COLLAPSED:
            votes["lgbm"] = ("HOLD", 0.75)
        elif symbol == "BNBUSDT" and k == 0:
            votes["lgbm"] = ("BUY", 1.05)  # the uncapped rule-based lgbm: out of range, kept raw
        lgbm_post.append(votes["lgbm"][1])
        entries.append((f"{CUT + i * 20_000}-0", envelope(payload(dict(votes), symbol=symbol, side="SELL"))))
    return entries, lgbm_post


def write(
    client: redis.Redis, key: str, entries: list[tuple[str, dict[str, str]]], maxlen: int | None = None
) -> None:
    with client.pipeline(transaction=False) as pipe:
        for stream_id, fields in entries:
            if maxlen is None:
                pipe.xadd(key, dict(fields), id=stream_id)  # type: ignore[arg-type]
            else:
                pipe.xadd(key, dict(fields), id=stream_id, maxlen=maxlen, approximate=False)  # type: ignore[arg-type]
        pipe.execute()


def engine_commit_config(tmp_path: Path) -> Path:
    config = tmp_path / "quantum-gate.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "report": {
                    "deployment_info": [sys.executable, "-c", "print('a559ae5d')"],
                    "notes": "patch: lgbm_agent.py no longer caps at 0.75",
                    "top_symbols": 5,
                }
            }
        ),
        encoding="utf-8",
    )
    return config


# ---- check -----------------------------------------------------------------------------------------


def test_collapse_report_from_check_shows_where_the_collapse_sits(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    entries, lgbm_post = scenario()
    write(redis_server.admin(), stream_key, entries)
    reports = tmp_path / "reports"
    argv = [
        sys.executable, "-m", "quantum_gate", "check",
        "--redis-url", redis_server.url, "--stream", stream_key,
        "--after", "2026-01-10T05:43:15Z",
        "--config", str(engine_commit_config(tmp_path)),
        "--note", "restarted by ops after a559ae5d",
        "--report-dir", str(reports), "--json",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    document = json.loads(done.stdout)
    assert document["verdict"] == "FAIL"
    assert any(reason.startswith("lgbm: majority") for reason in document["reasons"])

    # Per symbol: the four collapsed symbols rank first for lgbm, pinned at HOLD 0.75 with no spread.
    lgbm = document["symbols"]["models"]["lgbm"]
    assert document["symbols"]["top_n"] == 5
    assert lgbm["distinct"] == 6
    assert {row["symbol"] for row in lgbm["symbols"][:4]} == set(COLLAPSED)
    for row in lgbm["symbols"][:4]:
        assert row["pre"]["samples"] == 100 and row["post"]["samples"] == 50
        assert row["post"]["action_shares"] == {"BUY": 0.0, "SELL": 0.0, "HOLD": 1.0, "other": 0.0}
        assert row["post"]["mean"] == 0.75 and row["post"]["std"] == 0.0
        assert row["pre"]["action_counts"] == {"BUY": 34, "SELL": 33, "HOLD": 33, "other": 0}
        assert row["action_shift"] == pytest.approx(0.67)
    assert len(lgbm["symbols"]) == 5
    assert lgbm["other"]["symbols"] == 1 and lgbm["other"]["post"]["samples"] == 50
    # xgb did not change: the same cycle of actions on every symbol, before and after.
    assert all(row["action_shift"] < 0.05 for row in document["symbols"]["models"]["xgb"]["symbols"])

    # Transitions: lgbm never repeated an action before; after the cutover 2/3 of its moves are HOLD -> HOLD.
    pre_t = document["transitions"]["models"]["lgbm"]["pre"]
    post_t = document["transitions"]["models"]["lgbm"]["post"]
    assert document["transitions"]["labels"] == ["BUY", "SELL", "HOLD", "other"]
    assert pre_t["transitions"] == 6 * 99 and pre_t["self_share"] == 0.0
    assert pre_t["counts"] == [[0, 198, 0, 0], [0, 0, 198, 0], [198, 0, 0, 0], [0, 0, 0, 0]]  # 33 a symbol
    # 4 collapsed symbols: 49 HOLD -> HOLD each; BNB and ADA keep cycling (BUY->SELL 17, SELL->HOLD 16,
    # HOLD->BUY 16 per symbol).
    assert post_t["counts"] == [[0, 34, 0, 0], [0, 0, 32, 0], [32, 0, 196, 0], [0, 0, 0, 0]]
    assert post_t["self_share"] == pytest.approx(196 / 294)
    assert post_t["dominant"] == {"from": "HOLD", "to": "HOLD", "count": 196, "share": 196 / 294}

    # Histograms: the 200 pinned votes sit in (0.70, 0.75]; the 1.05 shows right of 1.0.
    hist = document["histograms"]
    assert (hist["bins"], hist["lo"], hist["hi"]) == (22, 0.0, 1.1)
    expected = histogram(np.array(lgbm_post), 22, 0.0, 1.1)
    assert hist["models"]["lgbm"]["post"]["counts"] == list(expected.counts)
    assert hist["models"]["lgbm"]["post"]["counts"][14] >= 200
    assert hist["models"]["lgbm"]["post"]["counts"][20] == 1  # (1.00, 1.05]
    assert hist["models"]["lgbm"]["pre"]["total"] == 600

    # Provenance and retention.
    assert document["cutover"]["stream_id"] == f"{CUT}-0"
    assert document["deployment"]["output"] == "a559ae5d"
    assert document["deployment"]["returncode"] == 0 and document["deployment"]["error"] is None
    assert document["notes"] == {
        "config": "patch: lgbm_agent.py no longer caps at 0.75",
        "operator": "restarted by ops after a559ae5d",
    }
    retention = document["retention"]
    assert retention["length"] == retention["entries_added"] == 900
    assert retention["trimming"] is False
    assert retention["covers_seconds"] == 899 * 20
    assert retention["risks"] == {"baseline": False, "post_window": False}

    # The Markdown next to the JSON says the same, as a person reads it.
    [markdown_path] = reports.glob("quality_gate_*.md")
    markdown = markdown_path.read_text(encoding="utf-8")
    assert (
        json.loads(markdown_path.with_suffix(".json").read_text(encoding="utf-8"))["symbols"]
        == document["symbols"]
    )
    for heading in (
        "## Cutover provenance",
        "## Stream retention",
        "## Per-symbol breakdown",
        "## Action transitions",
        "## Confidence histograms",
    ):
        assert heading in markdown
    assert "a559ae5d" in markdown and "> restarted by ops after a559ae5d" in markdown
    headline = next(line for line in markdown.splitlines() if line.startswith("- **lgbm**: `"))
    assert headline.split("`")[1] in COLLAPSED and ": HOLD 33.0% -> 100.0%, mean " in headline
    assert "### lgbm: stuck 0.0% -> 66.7%; dominant move post HOLD -> HOLD (66.7%)" in markdown
    assert "| HOLD | 198 (100.0%) | 0 (0.0%) | 0 (0.0%) | 32 (14.0%) | 0 (0.0%) | 196 (86.0%) |" in markdown
    assert "| `ETHUSDT` | 100 -> 50 | 34.0% -> 0.0% | 33.0% -> 0.0% | 33.0% -> 100.0% |" in markdown
    lgbm_bars = markdown.split("lgbm: confidence")[1].split("```")[0]
    pinned = next(line for line in lgbm_bars.splitlines() if line.startswith("(0.70, 0.75]"))
    assert pinned.rstrip().endswith("|" + "#" * 25 + "|")  # the tallest bar of the model fills the width
    assert any(line.startswith("(1.00, 1.05]!") and "     1" in line for line in lgbm_bars.splitlines())


def test_diagnose_adds_symbols_and_transitions(
    redis_server: RedisServer, stream_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entries, _ = scenario(pre_per_symbol=20, post_per_symbol=10)
    write(redis_server.admin(), stream_key, entries)
    common = ["--redis-url", redis_server.url, "--stream", stream_key, "--after", f"{CUT}-0"]
    assert main(["diagnose", *common, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["symbols"]["models"]["lgbm"]["symbols"][0]["symbol"] in COLLAPSED
    assert document["transitions"]["models"]["lgbm"]["post"]["counts"][2][2] == 4 * 9
    assert main(["diagnose", *common]) == 0
    text = capsys.readouterr().out
    assert "== action transitions on the same symbol" in text
    assert "lgbm: stuck 0.0% -> 66.7%" in text
    assert "HOLD 30.0% -> 100.0%" in text  # the symbols that changed most, per model


# ---- the daemon ------------------------------------------------------------------------------------


@contextmanager
def tailing(daemon: Daemon) -> Iterator[Daemon]:
    """The daemon's start phase and tail thread (no HTTP, scheduler or signals)."""
    daemon.tracker.initial_cutover()
    thread = threading.Thread(target=daemon.ingestor.tail_forever, name="test-tail", daemon=True)
    thread.start()
    try:
        wait_until(daemon.ingestor.ready.is_set, 10.0, "the daemon to become ready")
        yield daemon
    finally:
        daemon.stopping.set()
        thread.join(timeout=5)


def test_daemon_gate_document_carries_depth_provenance_and_retention_risks(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    # 80 entries a minute apart before the cutover, 40 after, written with MAXLEN 100: the stream keeps
    # cut-60min .. cut+39min (99 minutes). At 1 event/min the post window needs 200 minutes from the
    # cutover to reach 200 events: longer than the stream covers, and trimming reaches the baseline first.
    pre = [(f"{CUT - (80 - i) * MINUTE}-0", envelope(payload({"xgb": healthy(i, 0)}))) for i in range(80)]
    post = [
        (f"{CUT + i * MINUTE}-0", envelope(payload({"xgb": ("HOLD", 0.5)}, symbol="ETHUSDT")))
        for i in range(40)
    ]
    write(redis_server.admin(), stream_key, pre + post, maxlen=100)
    settings = Settings.model_validate(
        {
            "redis": {"url": redis_server.url, "stream": stream_key, "block_ms": 100},
            "cutover": {"after": f"{CUT}-0"},
            "daemon": {"report_dir": str(tmp_path / "reports")},
            "report": {
                "deployment_info": [sys.executable, "-c", "print('a559ae5d')"],
                "notes": "from config",
            },
        }
    )
    now = (CUT + 40 * MINUTE) / 1000
    daemon = Daemon(settings, clock=lambda: now)
    registry = make_registry(daemon.snapshot)
    with capture_logs() as logs, tailing(daemon):
        wait_until(lambda: daemon.ingestor.state().retention is not None, 10.0, "the first XINFO reading")
        wait_until(lambda: not daemon.tracker.state().deployment_capturing, 10.0, "deployment_info")
        daemon.evaluator.tick()
        document = daemon.evaluator.state().document
        assert document is not None
        assert document["deployment"]["output"] == "a559ae5d"
        assert document["notes"] == {"config": "from config", "operator": None}
        assert document["symbols"]["models"]["xgb"]["symbols"][0]["symbol"] in {"BTCUSDT", "ETHUSDT"}
        assert document["transitions"]["models"]["xgb"]["post"]["dominant"]["from"] == "HOLD"
        assert document["histograms"]["models"]["xgb"]["post"]["counts"][9] == 40  # (0.45, 0.50]
        retention = document["retention"]
        assert retention["length"] == 100 and retention["entries_added"] == 120 and retention["trimmed"] == 20
        assert retention["covers_seconds"] == 99 * 60
        assert retention["risks"] == {"baseline": True, "post_window": True}

        def sample(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert sample("quantum_gate_stream_first_entry_timestamp_seconds") == (CUT - 60 * MINUTE) / 1000
        assert sample("quantum_gate_stream_retention_seconds") == 99 * 60
        assert sample("quantum_gate_stream_entries_added") == 120
        assert sample("quantum_gate_retention_risk", kind="baseline") == 1
        assert sample("quantum_gate_retention_risk", kind="post_window") == 1
    warnings = [entry for entry in logs if entry["event"] == "retention.warning"]
    assert sorted(entry["kind"] for entry in warnings) == ["baseline", "post_window"]
    post_warning = next(entry for entry in warnings if entry["kind"] == "post_window")
    assert (
        "3.3 h from the cutover" in post_warning["reason"] and "covers only 1.6 h" in post_warning["reason"]
    )
    captured = [entry for entry in logs if entry["event"] == "deployment.captured"]
    assert len(captured) == 1 and captured[0]["output"] == "a559ae5d"


# ---- deployment_info -------------------------------------------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_deployment_info_is_bounded_in_time_and_size_and_never_raises() -> None:
    assert capture_deployment_info((), timeout=1, max_bytes=100) is None
    ok = capture_deployment_info(python("print('abc123')"), timeout=10, max_bytes=100, clock=lambda: 0.0)
    assert ok is not None and ok.output == "abc123" and ok.returncode == 0 and ok.ok
    assert ok.to_json()["captured_at"] == "1970-01-01T00:00:00Z"
    big = capture_deployment_info(
        python("import sys; sys.stdout.write('x' * 10**7)"), timeout=10, max_bytes=64
    )
    assert big is not None and big.truncated and big.output == "x" * 64 and big.error is None
    started = time.monotonic()
    hung = capture_deployment_info(python("import time; time.sleep(30)"), timeout=0.5, max_bytes=64)
    assert time.monotonic() - started < 5
    assert hung is not None and hung.error == "timed out after 0.5s" and hung.returncode is None
    failed = capture_deployment_info(
        python("import sys; print('fatal: not a git repository', file=sys.stderr); sys.exit(128)"),
        timeout=10,
        max_bytes=64,
    )
    assert failed is not None and failed.error == "exit status 128: fatal: not a git repository"
    missing = capture_deployment_info(["/nonexistent/git", "rev-parse", "HEAD"], timeout=1, max_bytes=64)
    assert missing is not None and missing.error is not None and missing.error.startswith("cannot run")
    no_shell = capture_deployment_info(["echo", "$HOME; rm -rf /"], timeout=10, max_bytes=64)
    assert no_shell is not None and no_shell.output == "$HOME; rm -rf /"  # an argv, never a shell


def test_provenance_never_shows_another_cutovers_output() -> None:
    pending = provenance_json(None, "", None, configured=("git", "rev-parse", "HEAD"))
    assert pending["deployment"]["error"] == "not captured yet for this cutover"
    assert pending["notes"] == {"config": None, "operator": None}
    assert provenance_json(None, "n", "o") == {"deployment": None, "notes": {"config": "n", "operator": "o"}}


def test_a_slow_deployment_info_never_holds_the_tail_and_the_gate_waits_for_it(
    redis_server: RedisServer, stream_key: str, tmp_path: Path
) -> None:
    """deployment_info runs on a thread of its own: while it takes its time the tail keeps reading, the
    document says "not captured yet", and the automatic gate (report, hook) waits for it, so the report
    it writes names the deployment; the ledger row gets the provenance when it arrives."""
    client = redis_server.admin()
    pre = [(f"{CUT - (80 - i) * MINUTE}-0", envelope(payload({"xgb": healthy(i, 0)}))) for i in range(80)]
    write(
        client,
        stream_key,
        pre + [(f"{CUT + i * MINUTE}-0", envelope(payload({"xgb": healthy(i, 1)}))) for i in range(10)],
    )
    gate_file = tmp_path / "gate-may-answer"
    slow = (  # answers once the test lets it (or after 60 s, so a failed test leaves no process behind)
        f"import pathlib, time\nend = time.time() + 60\n"
        f"while not pathlib.Path({str(gate_file)!r}).exists() and time.time() < end: time.sleep(0.05)\n"
        "print('a559ae5d')"
    )
    settings = Settings.model_validate(
        {
            "redis": {"url": redis_server.url, "stream": stream_key, "block_ms": 100},
            "cutover": {"after": f"{CUT}-0"},
            "gate": {"min_events": 30, "min_samples": 30},
            "daemon": {"report_dir": str(tmp_path / "reports")},
            "report": {
                "deployment_info": [sys.executable, "-c", slow],
                "deployment_info_timeout_seconds": 30,
            },
        }
    )
    now = (CUT + 60 * MINUTE) / 1000
    daemon = Daemon(settings, clock=lambda: now)
    with tailing(daemon):
        assert daemon.tracker.state().deployment_capturing  # the command waits for the file
        later = [(f"{CUT + i * MINUTE}-0", envelope(payload({"xgb": healthy(i, 1)}))) for i in range(10, 40)]
        write(client, stream_key, later)
        wait_until(
            lambda: len(daemon.windows.post) == 40, 10.0, "the tail to read on while deployment_info runs"
        )
        daemon.evaluator.tick()
        document = daemon.evaluator.state().document
        assert document is not None and document["windows"]["post"]["events"] == 40
        assert document["deployment"]["error"] == "not captured yet for this cutover"
        assert not list((tmp_path / "reports").glob("*.json"))  # the gate waits for the deployment
        gate_file.touch()
        wait_until(lambda: not daemon.tracker.state().deployment_capturing, 10.0, "deployment_info")
        daemon.evaluator.tick()
        [report] = (tmp_path / "reports").glob("*.json")
        assert json.loads(report.read_text())["deployment"]["output"] == "a559ae5d"
        row = daemon.ledger.history.current
        assert row is not None and row.provenance["deployment"]["output"] == "a559ae5d"
