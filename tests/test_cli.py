"""``quantum-gate check / diagnose / cutover`` as real subprocesses against a private redis-server."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import REPO, FakeSystemd, RedisServer, envelope, free_port, payload
from eventkit import CUTOVER_MS, collapsed_entries, entry_fields, healthy_entries, write_entries

from quantum_gate.cli import build_parser, main

CUTOVER_ISO = "2026-01-10T05:43:15Z"
CONSOLE_SCRIPT = REPO / ".venv" / "bin" / "quantum-gate"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "quantum_gate"]
STAT_NAMES = {
    "samples",
    "presence",
    "action_shares",
    "hold_share",
    "majority_share",
    "majority_action",
    "mean",
    "std",
    "p10",
    "p90",
    "p10_p90",
    "unique_values",
    "top_value",
    "top_value_share",
    "suspect_shares",
    "out_of_range",
    "invalid_votes",
    "variants",
    "shadow",
    "inactive",
}


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("QUANTUM_GATE_")}
    clean.update(env or {})
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, env=clean, cwd=cwd, check=False
    )


def check(
    server: RedisServer, key: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run("check", "--redis-url", server.url, "--stream", key, *args, env=env)


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quantum-gate: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.fixture
def client(redis_server: RedisServer) -> redis.Redis:
    return redis_server.admin()


# ---- check: verdicts and exit codes ----------------------------------------------------------------


def test_check_healthy_stream_exits_0(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    write_entries(client, stream_key, collapsed_entries(120, CUTOVER_MS - 200_000, 1000))
    write_entries(client, stream_key, healthy_entries(250, CUTOVER_MS, 1000, fallback_every=4))
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    document = as_json(result)
    assert document["verdict"] == "PASS"
    assert document["reasons"] == []
    assert document["cutover"]["stream_id"] == "1768023795000-0"
    assert document["cutover"]["timestamp"] == "2026-01-10T05:43:15.000Z"
    assert document["cutover"]["source"] == "after"
    assert document["windows"]["post"]["events"] == 250
    assert document["windows"]["pre"]["events"] == 120
    assert document["windows"]["post"]["skipped"] == {}
    assert sorted(document["models"]) == ["lgbm", "xgb"]  # `fallback` is not a model
    for model in document["models"].values():
        assert model["verdict"] == "PASS"
        assert set(model["post"]) >= STAT_NAMES and set(model["pre"]) >= STAT_NAMES
        assert model["post"]["samples"] == 250 and model["pre"]["samples"] == 120
        assert model["pre"]["hold_share"] == 1.0
        assert model["delta"]["hold_share"] == pytest.approx(model["post"]["hold_share"] - 1.0)
        checks = {item["name"]: item for item in model["checks"]}
        assert set(checks) == {
            "min_samples",
            "majority",
            "hold",
            "std",
            "p10_p90",
            "constant",
            "out_of_range",
            "invalid_votes",
        }
        assert all(item["passed"] for item in checks.values())
        assert checks["majority"]["threshold"] == 0.7 and checks["majority"]["value"] <= 0.7
        assert checks["std"]["threshold"] == 0.05 and checks["std"]["value"] >= 0.05
    assert document["ensemble"]["post"]["fallback_share"] == pytest.approx(63 / 250)
    assert document["comparison"]["xgb"]["ks"]["statistic"] > 0.5
    assert document["comparison"]["xgb"]["chi2"]["dof"] == 2


def test_check_collapse_exits_2(redis_server: RedisServer, client: redis.Redis, stream_key: str) -> None:
    write_entries(client, stream_key, collapsed_entries(220, CUTOVER_MS, 1000))
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 2, result.stderr
    document = as_json(result)
    assert document["verdict"] == "FAIL"
    assert "xgb: hold 1 (must be <= 0.85)" in document["reasons"]
    assert "lgbm: majority 1 (must be <= 0.7)" in document["reasons"]
    failed = {item["name"] for item in document["models"]["lgbm"]["checks"] if not item["passed"]}
    assert failed == {"majority", "hold", "std", "p10_p90", "constant"}


def test_check_too_few_events_exits_2(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    write_entries(client, stream_key, healthy_entries(199, CUTOVER_MS, 1000))
    result = check(redis_server, stream_key, "--after", str(CUTOVER_MS), "--json")
    assert result.returncode == 2
    document = as_json(result)
    assert document["verdict"] == "INSUFFICIENT_DATA"
    assert "post window holds 199 of 200 events" in document["reasons"]
    assert document["progress"]["events"] == 199


def test_check_empty_stream_is_insufficient(redis_server: RedisServer, stream_key: str) -> None:
    """The key does not exist: --json still prints one object (never PASS) and stderr says why."""
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 2
    document = as_json(result)
    assert document["verdict"] == "INSUFFICIENT_DATA"
    assert document["models"] == {}
    missing = f"stream {stream_key} does not exist on this Redis"
    assert document["reasons"][0] == missing
    assert result.stderr == f"quantum-gate: {missing}\n"


def test_check_window_flag_bounds_the_post_window(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    write_entries(client, stream_key, collapsed_entries(100, CUTOVER_MS, 1000))
    write_entries(client, stream_key, healthy_entries(300, CUTOVER_MS + 100_000, 1000))
    result = check(
        redis_server, stream_key, "--after", CUTOVER_ISO, "--window", "250", "--baseline", "10", "--json"
    )
    document = as_json(result)
    assert result.returncode == 0, document["reasons"]  # the collapsed oldest 100 fell out of the window
    assert document["windows"]["post"]["events"] == 250
    assert document["windows"]["pre"]["events"] == 0


def test_regression_json_array_payload_does_not_crash_check(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    entries = healthy_entries(200, CUTOVER_MS, 1000)
    entries.append((f"{CUTOVER_MS + 200_000}-0", envelope("[1, 2, 3]")))
    entries.append((f"{CUTOVER_MS + 201_000}-0", envelope("[]")))
    write_entries(client, stream_key, entries)
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result)["windows"]["post"]["skipped"] == {"payload_not_object": 2}


def test_regression_lgbm_above_one_is_reported_raw(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    entries = healthy_entries(220, CUTOVER_MS, 1000)
    entries.append(
        (
            f"{CUTOVER_MS + 220_000}-0",
            envelope(payload({"xgb": ("BUY", 0.6), "lgbm": {"action": "SELL", "confidence": 1.05}})),
        )
    )
    write_entries(client, stream_key, entries)
    document = as_json(check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json"))
    lgbm = document["models"]["lgbm"]
    assert lgbm["post"]["max"] == 1.05
    assert lgbm["post"]["out_of_range"] == 1
    assert document["verdict"] == "FAIL"


def test_check_survives_undecodable_strings(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    """A Python producer can write a lone surrogate as the JSON escape \\ud800 (json.dumps does). One
    such entry must not crash ``check`` with a traceback (today: orjson refuses to encode the key)."""
    entries = healthy_entries(200, CUTOVER_MS, 1000)
    hostile = json.dumps(
        {"model_breakdown": {"\ud800x": {"action": "BUY", "confidence": 0.5}}, "symbol": "\ud800"}
    )
    entries.append((f"{CUTOVER_MS + 200_000}-0", envelope(hostile)))
    write_entries(client, stream_key, entries)
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO, "--json")
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode in (0, 2)
    assert as_json(result)["windows"]["post"]["events"] >= 200


# ---- check: output forms ---------------------------------------------------------------------------


def test_check_table_shows_rate_and_eta_while_insufficient(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    now_ms = int(time.time() * 1000)
    cutover_ms = now_ms - 300_000
    pre = healthy_entries(20, now_ms - 3_600_000, 1000)  # older than the 600 s rate horizon
    post = healthy_entries(50, now_ms - 250_000, 5000)  # 50 events in the last 250 s
    write_entries(client, stream_key, pre + post)
    result = check(redis_server, stream_key, "--after", str(cutover_ms))
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "quantum-gate: INSUFFICIENT_DATA"
    # 50 events over the 600 s horizon = 5.00/min; 150 still missing -> 30 minutes
    assert "post      50/200 events, rate 5.00/min, ETA 30m00s" in lines
    assert "baseline  20 events before the cutover" in lines
    header = next(line for line in lines if line.startswith("model"))
    assert "verdict" in header and "HOLD pre->post" in header and "P10-P90 pre->post" in header
    xgb = next(line for line in lines if line.startswith("xgb "))
    assert "INSUFFICIENT_DATA" in xgb and " 50 " in xgb
    assert "why: post window holds 50 of 200 events" in lines


def test_check_table_when_passing_has_no_eta(
    redis_server: RedisServer, client: redis.Redis, stream_key: str
) -> None:
    write_entries(client, stream_key, healthy_entries(200, CUTOVER_MS, 1000))
    result = check(redis_server, stream_key, "--after", CUTOVER_ISO)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "quantum-gate: PASS"
    assert "post      200/200 events" in result.stdout
    assert "ETA" not in result.stdout


def test_check_report_dir_writes_markdown_and_json(
    redis_server: RedisServer, client: redis.Redis, stream_key: str, tmp_path: Path
) -> None:
    write_entries(client, stream_key, healthy_entries(200, CUTOVER_MS, 1000))
    reports = tmp_path / "reports" / "nested"
    result = check(
        redis_server,
        stream_key,
        "--after",
        CUTOVER_ISO,
        "--json",
        "--report-dir",
        str(reports),
        "--note",
        "canary 3",
    )
    assert result.returncode == 0, result.stderr
    written = sorted(path.name for path in reports.iterdir())
    assert len(written) == 2, written
    json_name, md_name = written
    assert json_name.startswith("quality_gate_") and json_name.endswith("Z.json")
    assert md_name == json_name.removesuffix(".json") + ".md"
    stored = json.loads((reports / json_name).read_text(encoding="utf-8"))
    assert stored == as_json(result)
    assert stored["notes"]["operator"] == "canary 3"
    markdown = (reports / md_name).read_text(encoding="utf-8")
    assert markdown.startswith("# Quality gate: PASS\n")
    assert "| majority | " in markdown and "### xgb: PASS" in markdown
    assert f"report written: {reports / json_name}" in result.stderr


# ---- check: could not evaluate (exit 1, one line, no traceback) -----------------------------------


def test_unreachable_redis(stream_key: str) -> None:
    result = run(
        "check",
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",
        "--stream",
        stream_key,
        "--after",
        CUTOVER_ISO,
    )
    assert_one_line_error(result, "redis:", "onnect")


def test_unreachable_redis_from_the_environment(stream_key: str) -> None:
    result = run(
        "check", "--stream", stream_key, "--after", CUTOVER_ISO,
        env={"QUANTUM_GATE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )  # fmt: skip
    assert_one_line_error(result, "redis:")


# As whole processes: the representative failures ...
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["check", "--after", CUTOVER_ISO, "--window", "abc"], "usage:"),
        (["check", "--after", "yesterday"], "cutover:"),
        (["check", "--after", CUTOVER_ISO, "--redis-url", "redis://127.0.0.1:notaport/0"], "redis.url"),
    ],
)
def test_bad_arguments(args: list[str], fragment: str) -> None:
    assert_one_line_error(run(*args), fragment)


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("gate:\n  majority_max: 1.7\n", "config: gate.majority_max:"),
        ("gate:\n  majority: 0.7\n", "config: gate.majority: unknown key"),
    ],
)
def test_bad_config_file(tmp_path: Path, stream_key: str, yaml_text: str, fragment: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    assert_one_line_error(
        run("check", "--config", str(config), "--stream", stream_key, "--after", CUTOVER_ISO), fragment
    )


# ... and the wider matrix in-process through the same entry point (main() is what the script runs)
def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    for name in list(os.environ):
        if name.startswith("QUANTUM_GATE_"):
            monkeypatch.delenv(name)
    code = main(args)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["check", "--after", CUTOVER_ISO, "--window", "0"], "windows.post"),
        (["check", "--after", CUTOVER_ISO, "--window", "100"], "gate.min_events (200) exceeds windows.post"),
        (["check", "--after", "1969-12-31T00:00:00Z"], "cutover:"),
        (["check", "--after", "0001-01-01T00:00:00+01:00"], "cutover:"),
        (["check", "--after", CUTOVER_ISO, "--unit", "x.service"], "usage:"),
        (["check", "--after", CUTOVER_ISO, "--bogus"], "usage:"),
        (["check", "--after", CUTOVER_ISO, "--redis-url", "http://127.0.0.1/0"], "redis.url"),
        (["check", "--after", CUTOVER_ISO, "--redis-url", "redis://127.0.0.1:99999/0"], "redis.url"),
        (["diagnose", "--after", CUTOVER_ISO, "--top", "x"], "usage:"),
        (["diagnose", "--after", CUTOVER_ISO, "--top", "0"], "--top: must be >= 1"),
        (["diagnose", "--after", CUTOVER_ISO, "--top", "-3", "--json"], "--top: must be >= 1"),
        (["cutover", "--after", "soon"], "cutover:"),
        (["frobnicate"], "usage:"),
        ([], "usage:"),
    ],
)
def test_bad_arguments_matrix(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_error(run_main(args, capsys, monkeypatch), fragment)


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("colour: blue\n", "config: colour: unknown key"),
        ("gate: [\n", "not valid YAML"),
        ("gate:\n  hold_max: -1\n", "config: gate.hold_max:"),
        ("redis:\n  page_size: 5000\n", "config: redis.page_size:"),
        ("- a list\n", "top level must be a mapping"),
    ],
)
def test_bad_config_matrix(
    tmp_path: Path,
    yaml_text: str,
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text, encoding="utf-8")
    result = run_main(["check", "--config", str(config), "--after", CUTOVER_ISO], capsys, monkeypatch)
    assert_one_line_error(result, fragment)


def test_bad_config_from_the_environment(stream_key: str) -> None:
    result = run(
        "check", "--stream", stream_key, "--after", CUTOVER_ISO, env={"QUANTUM_GATE_GATE_MAJORITY_MAX": "1.7"}
    )
    assert_one_line_error(result, "config: gate.majority_max:")
    result = run("check", "--stream", stream_key, "--after", CUTOVER_ISO, env={"QUANTUM_GATE_NOPE": "1"})
    assert_one_line_error(result, "QUANTUM_GATE_NOPE")


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(
        run("check", "--config", str(tmp_path / "absent.yaml"), "--after", CUTOVER_ISO), "absent.yaml"
    )


def test_config_file_thresholds_apply(
    redis_server: RedisServer, client: redis.Redis, stream_key: str, tmp_path: Path
) -> None:
    write_entries(client, stream_key, collapsed_entries(60, CUTOVER_MS, 1000))
    config = tmp_path / "lenient.yaml"
    config.write_text(
        f"redis:\n  url: {redis_server.url}\n  stream: {stream_key}\n"
        "gate:\n  min_events: 50\n  min_samples: 50\n  exclude_models: [xgb, lgbm]\n",
        encoding="utf-8",
    )
    document = as_json(run("check", "--config", str(config), "--after", CUTOVER_ISO, "--json"))
    assert document["thresholds"]["min_events"] == 50
    assert document["verdict"] == "INSUFFICIENT_DATA"  # every model excluded: nothing gated, never PASS
    assert document["reasons"] == ["no gated model in the post window"]


def test_systemctl_missing(tmp_path: Path, stream_key: str) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run(
        "check", "--stream", stream_key, "--unit", "quantum-ai-engine.service", env={"PATH": str(empty)}
    )
    assert_one_line_error(result, "cutover:", "systemctl", "--after")


def test_systemctl_missing_is_the_default_source_too(tmp_path: Path, stream_key: str) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    assert_one_line_error(run("check", "--stream", stream_key, env={"PATH": str(empty)}), "systemctl")


def test_check_with_the_cutover_from_systemd(
    redis_server: RedisServer, client: redis.Redis, stream_key: str, fake_systemd: FakeSystemd
) -> None:
    fake_systemd.set(entered=CUTOVER_MS // 1000, invocation="inv-42", restarts=3, active_state="active")
    write_entries(client, stream_key, collapsed_entries(50, CUTOVER_MS - 100_000, 1000))
    write_entries(client, stream_key, healthy_entries(200, CUTOVER_MS, 1000))
    result = check(redis_server, stream_key, "--unit", "quantum-ai-engine.service", "--json")
    assert result.returncode == 0, result.stderr
    document = as_json(result)
    assert document["cutover"]["source"] == "systemd"
    assert document["cutover"]["stream_id"] == "1768023795000-0"
    assert document["cutover"]["invocation_id"] == "inv-42"
    assert (document["windows"]["post"]["events"], document["windows"]["pre"]["events"]) == (200, 50)


@pytest.mark.parametrize(
    ("state", "fragment"),
    [
        ({"entered": None}, "never started"),
        ({"stderr": "Failed to connect to bus: No such file or directory"}, "systemd is not reachable"),
        ({"entered": 1768023795, "old_systemd": True, "human": "Sat 2026-01-10 13:43:15 CST"}, "ambiguous"),
    ],
)
def test_check_cutover_unavailable(
    fake_systemd: FakeSystemd, stream_key: str, state: dict[str, Any], fragment: str
) -> None:
    fake_systemd.set(**state)
    assert_one_line_error(
        run("check", "--stream", stream_key, "--unit", "quantum-ai-engine.service"), "cutover:", fragment
    )


# ---- cutover ---------------------------------------------------------------------------------------


def test_cutover_after_converts() -> None:
    result = run("cutover", "--after", CUTOVER_ISO)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["cutover    2026-01-10T05:43:15.000Z", "stream ID  1768023795000-0"]
    document = as_json(run("cutover", "--after", "@1768023795", "--json"))
    assert document["stream_id"] == "1768023795000-0"
    assert document["source"] == "after"


@pytest.mark.parametrize(
    "copied", ["Sat 2026-01-10 05:43:15 UTC", "Sat 2026-01-10 06:43:15 CET", "Sat 2026-01-10 06:43:15 +0100"]
)
def test_cutover_after_takes_what_systemctl_show_prints(copied: str) -> None:
    """The seed's procedure copies ActiveEnterTimestamp from `systemctl show` into --after (issue 17.6)."""
    result = run("cutover", "--after", copied, "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result)["stream_id"] == "1768023795000-0"


def test_cutover_from_the_unit(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=1768023795, invocation="abc", restarts=2, active_state="active")
    result = run("cutover", "--unit", "quantum-ai-engine.service")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "cutover    2026-01-10T05:43:15.000Z",
        "stream ID  1768023795000-0",
        "unit       quantum-ai-engine.service (active)",
        "invocation abc",
        "restarts   2",
    ]
    fake_systemd.set(entered=1768023795, invocation="old", old_systemd=True)
    document = as_json(run("cutover", "--unit", "quantum-ai-engine.service", "--json"))
    assert document["stream_id"] == "1768023795000-0"
    assert document["active_enter_timestamp"] == "Sat 2026-01-10 05:43:15 UTC"
    assert document["invocation_id"] == "old"


def test_cutover_failures(fake_systemd: FakeSystemd, tmp_path: Path) -> None:
    fake_systemd.set(entered=None)
    assert_one_line_error(run("cutover", "--unit", "x.service"), "x.service has never started")
    fake_systemd.set(stderr="System has not been booted with systemd as init system (PID 1). Can't operate.")
    assert_one_line_error(run("cutover", "--unit", "x.service"), "systemd is not reachable")
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert_one_line_error(
        run("cutover", "--unit", "x.service", env={"PATH": str(empty)}), "not found on PATH"
    )
    assert_one_line_error(run("cutover", "--after", "not-a-time"), "cutover:")


# ---- diagnose --------------------------------------------------------------------------------------


def lgbm_capped_entries(count: int, start_ms: int) -> list[tuple[str, dict[str, str]]]:
    """The seed's finding: 73 % of lgbm at exactly 0.75 (lgbm_fallback_rules), some at 0.5."""
    entries = []
    for index in range(count):
        if index % 100 < 73:
            lgbm = {"action": "BUY", "confidence": 0.75, "model": "lgbm_fallback_rules"}
        elif index % 100 < 83:
            lgbm = {"action": "HOLD", "confidence": 0.5, "model": "lgbm_fallback_rules"}
        else:
            lgbm = {"action": "SELL", "confidence": 0.6 + (index % 13) / 100, "model": "lgbm"}
        text = payload({"lgbm": lgbm, "xgb": ("SELL", 0.3 + (index % 50) / 100)}, fallback=index % 5 == 0)
        entries.append((f"{start_ms + index * 1000}-0", envelope(text)))
    return entries


def test_diagnose_json(redis_server: RedisServer, client: redis.Redis, stream_key: str) -> None:
    write_entries(client, stream_key, lgbm_capped_entries(200, CUTOVER_MS))
    write_entries(
        client, stream_key, [(f"{CUTOVER_MS + 300_000}-0", entry_fields({"nhits": ("HOLD", 1.05)}))]
    )
    result = run(
        "diagnose",
        "--redis-url",
        redis_server.url,
        "--stream",
        stream_key,
        "--after",
        CUTOVER_ISO,
        "--json",
        "--top",
        "3",
    )
    assert result.returncode == 0, result.stderr
    document = as_json(result)
    assert document["cutover"]["stream_id"] == "1768023795000-0"
    post = document["windows"]["post"]
    assert post["events"] == 201
    assert post["fallback_share"] == pytest.approx(40 / 201)
    lgbm = post["models"]["lgbm"]
    assert lgbm["samples"] == 200
    assert lgbm["top_values"][0] == {"value": 0.75, "count": 146, "share": 0.73}
    assert lgbm["top_values"][1] == {"value": 0.5, "count": 20, "share": 0.1}
    assert len(lgbm["top_values"]) == 3
    assert lgbm["suspect_constants"]["0.75"] == {"count": 146, "share": 0.73}
    assert lgbm["suspect_constants"]["0.5"]["count"] == 20
    assert lgbm["variants"] == {"lgbm_fallback_rules": 166, "lgbm": 34}
    assert lgbm["per_action"]["BUY"] == {"count": 146, "min": 0.75, "max": 0.75, "mean": 0.75}
    assert lgbm["per_action"]["HOLD"]["count"] == 20
    assert lgbm["per_action"]["SELL"]["min"] >= 0.6
    assert post["models"]["nhits"]["out_of_range"] == 1
    assert document["windows"]["pre"]["events"] == 0


def test_diagnose_text(redis_server: RedisServer, client: redis.Redis, stream_key: str) -> None:
    write_entries(client, stream_key, lgbm_capped_entries(100, CUTOVER_MS))
    result = run("diagnose", "--redis-url", redis_server.url, "--stream", stream_key, "--after", CUTOVER_ISO)
    assert result.returncode == 0, result.stderr
    assert "== post window: 100 events, fallback share 20.0%" in result.stdout
    assert "lgbm: n=100 " in result.stdout
    assert "0.75 x73 (73.0%)" in result.stdout
    assert "lgbm_fallback_rules 83" in result.stdout


def top_line(stdout: str, model: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(f"{model}: n="))


@pytest.mark.parametrize("top", [2, 8])
def test_diagnose_text_honours_top(
    redis_server: RedisServer, client: redis.Redis, stream_key: str, top: int
) -> None:
    write_entries(client, stream_key, lgbm_capped_entries(100, CUTOVER_MS))  # xgb: 50 distinct values
    args = ("diagnose", "--redis-url", redis_server.url, "--stream", stream_key, "--after", CUTOVER_ISO)
    result = run(*args, "--top", str(top))
    assert result.returncode == 0, result.stderr
    assert top_line(result.stdout, "xgb").count(" x2 (") == top  # each of the 50 values appears twice
    default = run(*args)
    assert top_line(default.stdout, "xgb").count(" x2 (") == 10  # --top's default, as --help says


def test_diagnose_unreachable_redis() -> None:
    assert_one_line_error(
        run("diagnose", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--after", CUTOVER_ISO), "redis:"
    )


def test_version_and_help() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("quantum-gate ")
    helped = run("check", "--help")
    assert helped.returncode == 0 and "--report-dir" in helped.stdout
    assert "@epoch" in " ".join(helped.stdout.split())  # argparse wraps the help text


def test_every_option_of_every_command_has_help() -> None:
    parser = build_parser()
    commands = next(action for action in parser._actions if action.choices and action.dest == "command")
    parsers = {"quantum-gate": parser, **dict(commands.choices.items())}  # type: ignore[union-attr]
    missing = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, command in parsers.items()
        for action in command._actions
        if action.option_strings and action.help in {None, "", argparse.SUPPRESS}
    ]
    assert len(parsers) == 7 and not missing, missing  # the program and its six commands
