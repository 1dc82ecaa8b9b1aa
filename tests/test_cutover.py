"""The cutover from systemd: parsing ``systemctl show`` output, and asking a stand-in systemctl."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import FakeSystemd
from hypothesis import given
from hypothesis import strategies as st

from quantum_gate.cutover import (
    Cutover,
    CutoverUnavailable,
    cutover_from_properties,
    fixed_cutover,
    parse_active_enter,
    parse_show_output,
    query_unit,
)
from quantum_gate.streamids import StreamId, StreamIdError

ENTERED = 1_768_023_795  # 2026-01-10T05:43:15Z
SEED_MOMENT = datetime(2026, 1, 10, 5, 43, 15, tzinfo=UTC)
UNIT = "quantum-ai-engine.service"


def test_parse_show_output() -> None:
    text = (
        "InvocationID=6f1c0b6d2e0b4e0c9f0f3d1e6a1b2c3d\n"
        "ActiveEnterTimestamp=Sat 2026-01-10 05:43:15 UTC\n"
        "ActiveState=active\n"
        "NRestarts=3\n"
        "\n"
        "garbage line without equals\n"
        "Description=a=b\n"
    )
    assert parse_show_output(text) == {
        "InvocationID": "6f1c0b6d2e0b4e0c9f0f3d1e6a1b2c3d",
        "ActiveEnterTimestamp": "Sat 2026-01-10 05:43:15 UTC",
        "ActiveState": "active",
        "NRestarts": "3",
        "Description": "a=b",
    }
    assert parse_show_output("") == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("@1768023795", SEED_MOMENT),
        ("@1768023795.250000", datetime(2026, 1, 10, 5, 43, 15, 250000, tzinfo=UTC)),
        ("Sat 2026-01-10 05:43:15 UTC", SEED_MOMENT),
        ("2026-01-10 05:43:15 UTC", SEED_MOMENT),
        ("Sat 2026-01-10 05:43:15 GMT", SEED_MOMENT),
        ("Sat 2026-01-10 05:43:15 Etc/UTC", SEED_MOMENT),
        ("Sat 2026-01-10 05:43:15.123456 UTC", datetime(2026, 1, 10, 5, 43, 15, 123456, tzinfo=UTC)),
        ("Sat 2026-01-10 05:43:15.5 UTC", datetime(2026, 1, 10, 5, 43, 15, 500000, tzinfo=UTC)),
        ("Sat 2026-01-10 06:43:15 +01:00", SEED_MOMENT),
        ("Sat 2026-01-10 06:43:15 +0100", SEED_MOMENT),
        ("Sat 2026-01-10 00:43:15 -0500", SEED_MOMENT),
        ("Sat 2026-01-10 11:13:15 +05:30", SEED_MOMENT),
        # zones systemd prints that name one offset in the tz database (issue 17.6), and bare hours
        ("Sat 2026-01-10 06:43:15 CET", SEED_MOMENT),
        ("Sat 2026-01-10 00:43:15 EST", SEED_MOMENT),
        ("Sat 2026-01-10 14:43:15 JST", SEED_MOMENT),
        ("Sat 2026-01-10 08:43:15 +03", SEED_MOMENT),
    ],
)
def test_parse_active_enter(value: str, expected: datetime) -> None:
    moment = parse_active_enter(value)
    assert moment == expected
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("zone", ["CST", "CDT", "PST", "IST", "Europe/Berlin", "XYZ"])
def test_ambiguous_zones_are_refused(zone: str) -> None:
    with pytest.raises(CutoverUnavailable) as caught:
        parse_active_enter(f"Sat 2026-01-10 06:43:15 {zone}")
    assert caught.value.reason == "non_utc_timestamp"
    assert zone in caught.value.message


@pytest.mark.parametrize(
    "value",
    [
        "@",
        "@abc",
        "@nan",
        "@inf",
        "@1e400",
        "yesterday",
        "Sat 2026-01-10",
        "Sat 2026-13-45 05:43:15 UTC",  # no such date
        "Sat 2026-01-10 25:61:61 UTC",
        "Sat 2026-01-10 05:43:15 +99:99",  # no such offset
        "Sat 0001-01-01 00:00:00 +01:00",  # no UTC date
        "Sat 9999-12-31 23:59:59 -05:00",
    ],
)
def test_unreadable_timestamps_are_bad_output(value: str) -> None:
    with pytest.raises(CutoverUnavailable) as caught:
        parse_active_enter(value)
    assert caught.value.reason == "bad_output"


@given(st.text(max_size=40))
def test_any_active_enter_text_is_a_time_or_cutover_unavailable(value: str) -> None:
    try:
        moment = parse_active_enter(value)
    except CutoverUnavailable as exc:
        assert exc.reason in {"bad_output", "non_utc_timestamp"}
        return
    assert moment.tzinfo is not None


@given(
    st.dictionaries(
        st.sampled_from(["ActiveEnterTimestamp", "InvocationID", "NRestarts", "ActiveState"]),
        st.text(max_size=30),
    )
)
def test_any_properties_are_a_cutover_or_cutover_unavailable(properties: dict[str, str]) -> None:
    try:
        cutover = cutover_from_properties(UNIT, properties)
    except CutoverUnavailable as exc:
        assert exc.reason in {"bad_output", "non_utc_timestamp", "never_started"}
        return
    assert cutover.stream_id.ms >= 0


def test_cutover_from_properties() -> None:
    cutover = cutover_from_properties(
        UNIT,
        {
            "InvocationID": "abc123",
            "ActiveEnterTimestamp": "@1768023795",
            "ActiveState": "active",
            "NRestarts": "2",
        },
    )
    assert cutover == Cutover(
        stream_id=StreamId(1_768_023_795_000, 0),
        source="systemd",
        unit=UNIT,
        invocation_id="abc123",
        active_enter_timestamp="@1768023795",
        active_state="active",
        n_restarts=2,
    )
    assert cutover.timestamp == "2026-01-10T05:43:15.000Z"
    assert cutover.identity() == ("abc123", StreamId(1_768_023_795_000, 0))
    data = cutover.to_json()
    assert data["stream_id"] == "1768023795000-0"
    assert data["timestamp"] == "2026-01-10T05:43:15.000Z"
    assert data["source"] == "systemd"
    assert data["n_restarts"] == 2


# ``@0`` is systemd's "never" (0 µs) in the --timestamp=unix form: not a cutover in 1970 (issue 16.10)
@pytest.mark.parametrize("value", ["", "0", "n/a", "@0", "@0.000000", "Thu 1970-01-01 00:00:00 UTC"])
def test_never_started(value: str) -> None:
    with pytest.raises(CutoverUnavailable) as caught:
        cutover_from_properties(UNIT, {"ActiveEnterTimestamp": value, "ActiveState": "inactive"})
    assert caught.value.reason == "never_started"
    assert UNIT in caught.value.message


def test_no_active_enter_line_is_bad_output_not_never_started() -> None:
    """``systemctl show -p ActiveEnterTimestamp`` always prints the line (empty when never started):
    output without it is not an answer about the unit (issue 17.7)."""
    for properties in ({}, {"garbage": "x"}, {"InvocationID": "abc", "ActiveState": "active"}):
        with pytest.raises(CutoverUnavailable) as caught:
            cutover_from_properties(UNIT, properties)
        assert caught.value.reason == "bad_output"


def test_start_before_the_epoch_is_bad_output() -> None:
    with pytest.raises(CutoverUnavailable) as caught:
        cutover_from_properties(UNIT, {"ActiveEnterTimestamp": "@-5"})
    assert caught.value.reason == "bad_output"


def test_missing_optional_properties() -> None:
    cutover = cutover_from_properties(UNIT, {"ActiveEnterTimestamp": "@1768023795", "NRestarts": "lots"})
    assert (cutover.invocation_id, cutover.active_state, cutover.n_restarts) == (None, None, None)


def test_fixed_cutover() -> None:
    cutover = fixed_cutover("2026-01-10T05:43:15Z")
    assert cutover.stream_id == StreamId(1_768_023_795_000, 0)
    assert cutover.source == "after"
    assert cutover.unit is None
    with pytest.raises(StreamIdError):
        fixed_cutover("not a time")


# ---- query_unit through the stand-in systemctl -----------------------------------------------------


def test_query_unit_normal(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=ENTERED, invocation="inv-1", restarts=4, active_state="active")
    cutover = query_unit(UNIT)
    assert cutover.stream_id == StreamId(1_768_023_795_000, 0)
    assert cutover.active_enter_timestamp == "@1768023795"  # the --timestamp=unix form was used
    assert (cutover.invocation_id, cutover.n_restarts, cutover.active_state) == ("inv-1", 4, "active")
    assert cutover.source == "systemd" and cutover.unit == UNIT


def test_query_unit_restart_moves_the_cutover(fake_systemd: FakeSystemd) -> None:
    fake_systemd.restart(ENTERED, invocation="first")
    first = query_unit(UNIT)
    fake_systemd.restart(ENTERED + 60, invocation="second", restarts=1)
    second = query_unit(UNIT)
    assert second.stream_id == StreamId(1_768_023_855_000, 0)
    assert first.identity() != second.identity()


def test_query_unit_old_systemd_falls_back_to_the_human_form(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=ENTERED, invocation="inv-old", old_systemd=True)
    cutover = query_unit(UNIT)
    assert cutover.stream_id == StreamId(1_768_023_795_000, 0)
    assert cutover.active_enter_timestamp == "Sat 2026-01-10 05:43:15 UTC"


def test_query_unit_old_systemd_in_an_ambiguous_zone(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=ENTERED, old_systemd=True, human="Sat 2026-01-10 13:43:15 CST")
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "non_utc_timestamp"
    fake_systemd.set(entered=ENTERED, old_systemd=True, human="Sat 2026-01-10 06:43:15 CET")
    assert query_unit(UNIT).stream_id == StreamId(1_768_023_795_000, 0)


def test_query_unit_at_zero_is_never_started(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=0, active_state="inactive")  # the stand-in prints ActiveEnterTimestamp=@0
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "never_started"


def test_query_unit_random_bytes_are_bad_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A systemctl (or a wrapper) that prints noise and exits 0 has not said the unit never started."""
    noisy = tmp_path / "noisy-bin"
    noisy.mkdir()
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 4 + b"\x00=\xff\nActiveEnter\xffTimestamp=@1768023795\n")
    script = noisy / "systemctl"
    script.write_text(f"#!/bin/sh\ncat {junk}\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{noisy}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "bad_output"


def test_query_unit_never_started(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(entered=None, active_state="inactive")
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "never_started"


def test_query_unit_without_a_bus(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(
        stderr="System has not been booted with systemd as init system (PID 1). Can't operate.\n"
        "Failed to connect to bus: Host is down"
    )
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "no_bus"
    fake_systemd.set(stderr="Failed to connect to bus: No such file or directory")
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "no_bus"
    assert "Failed to connect to bus" in caught.value.message


def test_query_unit_other_failure(fake_systemd: FakeSystemd) -> None:
    fake_systemd.set(stderr="Access denied", exit=4)
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "systemctl_error"
    assert "Access denied" in caught.value.message


def test_query_unit_systemctl_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT)
    assert caught.value.reason == "systemctl_missing"
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT, systemctl="no-such-systemctl-here")
    assert caught.value.reason == "systemctl_missing"


def test_query_unit_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    script = slow / "systemctl"
    script.write_text("#!/bin/sh\nexec sleep 5\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(CutoverUnavailable) as caught:
        query_unit(UNIT, timeout=0.3)
    assert caught.value.reason == "timeout"
