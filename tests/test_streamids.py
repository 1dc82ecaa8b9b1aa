"""Stream IDs and cutover forms: table-driven conversions, ordering, packing, and garbage refused."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quantum_gate.streamids import (
    AMBIGUOUS_ZONES,
    SEQ_BITS,
    SEQ_MAX,
    ZONE_ABBREVIATIONS,
    AmbiguousZoneError,
    StreamId,
    StreamIdError,
    cutover_to_stream_id,
    datetime_to_stream_id,
    ms_to_iso,
    parse_iso,
    parse_stream_id,
    stream_id_to_iso,
)

CUTOVER_MS = 1_768_023_795_000  # 2026-01-10T05:43:15Z, the seed's restart


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ISO 8601 with Z: the contract's worked value
        ("2026-01-10T05:43:15Z", "1768023795000-0"),
        ("2026-01-10T05:43:15z", "1768023795000-0"),
        ("  2026-01-10T05:43:15Z\n", "1768023795000-0"),
        ("2026-01-10T05:43:15.250Z", "1768023795250-0"),
        ("2026-01-10T05:43:15.123456Z", "1768023795123-0"),  # microseconds truncate to the ms
        # explicit offsets
        ("2026-01-10T05:43:15+00:00", "1768023795000-0"),
        ("2026-01-10T06:43:15+01:00", "1768023795000-0"),
        ("2026-01-10T00:43:15-05:00", "1768023795000-0"),
        ("2026-01-10T11:13:15+05:30", "1768023795000-0"),
        ("2026-01-10T06:43:15+0100", "1768023795000-0"),
        # naive ISO is UTC, never the host's zone
        ("2026-01-10T05:43:15", "1768023795000-0"),
        ("2026-01-10 05:43:15", "1768023795000-0"),
        ("2026-02-14T23:03:32.349227", "1771110212349-0"),  # the producer's envelope timestamp form
        ("2026-01-10", "1768003200000-0"),
        # epoch seconds, milliseconds, systemd's @seconds
        ("1768023795", "1768023795000-0"),
        ("1768023795.5", "1768023795500-0"),
        ("1768023795000", "1768023795000-0"),
        ("@1768023795", "1768023795000-0"),
        ("@1768023795.25", "1768023795250-0"),
        ("0", "0-0"),
        ("999999999999", "999999999999000-0"),  # just below the ms threshold: still seconds
        ("1000000000000", "1000000000000-0"),  # at the threshold: milliseconds
        # stream IDs pass through
        ("1768023795000-0", "1768023795000-0"),
        ("1768023795000-17", "1768023795000-17"),
        ("0-1", "0-1"),
        # systemd's own form, as `systemctl show` prints ActiveEnterTimestamp (issue 17.6)
        ("Sat 2026-01-10 05:43:15 UTC", "1768023795000-0"),
        ("  sat 2026-01-10 05:43:15 UTC\n", "1768023795000-0"),
        ("2026-01-10 05:43:15 UTC", "1768023795000-0"),
        ("Sat 2026-01-10 05:43:15.250 UTC", "1768023795250-0"),
        ("Sat 2026-01-10 06:43:15 CET", "1768023795000-0"),
        ("Sat 2026-01-10 07:43:15 EET", "1768023795000-0"),
        ("Sat 2026-01-10 00:43:15 EST", "1768023795000-0"),
        ("Sat 2026-01-10 06:43:15 +0100", "1768023795000-0"),
        ("Sat 2026-01-10 06:43:15 +01:00", "1768023795000-0"),
        ("Sat 2026-01-10 08:43:15 +03", "1768023795000-0"),
        ("Fri 2026-01-09 21:43:15 -0800", "1768023795000-0"),  # the local date and weekday are the 9th
    ],
)
def test_cutover_forms(text: str, expected: str) -> None:
    assert str(cutover_to_stream_id(text)) == expected


def test_naive_iso_is_utc_whatever_the_host_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert cutover_to_stream_id("2026-01-10T05:43:15") == StreamId(CUTOVER_MS, 0)
        assert parse_iso("2026-01-10T05:43:15") == datetime(2026, 1, 10, 5, 43, 15, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-01-10T25:00:00Z",
        "2026-01-10T05:43:15 CET",
        "1768023795000-",
        "-0",
        "1768023795000-0-0",
        "1-2-3",
        "-5",
        "@",
        "@-5",
        "@abc",
        "1e9",
        "0x10",
        "99999999999999999999999-0",  # more than 20 digits
        "18446744073709551616-0",  # 2**64: beyond Redis' 64-bit unsigned
        "99999999999999999999",  # epoch ms beyond 64 bits
        "1969-12-31T23:59:59Z",  # before the epoch: no stream ID exists
        "0001-01-01T00:00:00+01:00",  # out of range once moved to UTC
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_garbage_is_a_stream_id_error(garbage: str) -> None:
    with pytest.raises(StreamIdError):
        cutover_to_stream_id(garbage)


@pytest.mark.parametrize("zone", ["CST", "CDT", "IST", "PST", "Europe/Berlin", "XYZ", "Local"])
def test_systemd_form_with_an_ambiguous_zone_is_refused_in_one_line(zone: str) -> None:
    with pytest.raises(AmbiguousZoneError) as caught:
        cutover_to_stream_id(f"Sat 2026-01-10 05:43:15 {zone}")
    message = str(caught.value)
    assert f"{zone!r}" in message and "offset" in message and "\n" not in message


@pytest.mark.parametrize(
    "text",
    [
        "Fri 2026-01-10 05:43:15 UTC",  # the 10th is a Saturday: a typo in the date or the weekday
        "Sat 2026-01-10 05:43:15 +25",
        "Sat 2026-02-30 05:43:15 UTC",
        "Sat 2026-01-10 05:43 UTC",
        "Saturday 2026-01-10 05:43:15 UTC",
    ],
)
def test_bad_systemd_forms_are_refused(text: str) -> None:
    with pytest.raises(StreamIdError):
        cutover_to_stream_id(text)


def _tz_database_offsets() -> dict[str, set[int]]:
    """Every abbreviation the machine's tz database uses in 2020-2027, with the offsets it names."""
    offsets: dict[str, set[int]] = {}
    for name in zoneinfo.available_timezones():
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            continue
        for year in range(2020, 2028):
            for month in (1, 4, 7, 10):
                moment = datetime(year, month, 15, 12, tzinfo=zone)
                offset = moment.utcoffset()
                abbreviation = moment.tzname()
                if offset is not None and abbreviation is not None:
                    offsets.setdefault(abbreviation, set()).add(int(offset.total_seconds() // 60))
    return offsets


def test_zone_abbreviations_name_one_offset_in_the_tz_database() -> None:
    """The accepted abbreviations are those systemd can print that mean one offset, and no other."""
    offsets = _tz_database_offsets()
    if not offsets:
        pytest.skip("no tz database on this machine")
    for abbreviation, minutes in ZONE_ABBREVIATIONS.items():
        assert offsets.get(abbreviation, {minutes}) == {minutes}, abbreviation
    for abbreviation in AMBIGUOUS_ZONES:
        assert len(offsets.get(abbreviation, set())) > 1, abbreviation
    assert not set(ZONE_ABBREVIATIONS) & set(AMBIGUOUS_ZONES)


def test_stream_id_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        cutover_to_stream_id("yesterday")
    with pytest.raises(StreamIdError, match="empty"):
        cutover_to_stream_id("")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1768023795000-0", StreamId(CUTOVER_MS, 0)),
        (b"1768023795000-3", StreamId(CUTOVER_MS, 3)),
        (" 5-6 ", StreamId(5, 6)),
        ("18446744073709551615-18446744073709551615", StreamId(2**64 - 1, 2**64 - 1)),
    ],
)
def test_parse_stream_id(text: str | bytes, expected: StreamId) -> None:
    assert parse_stream_id(text) == expected


@pytest.mark.parametrize("text", ["", "1768023795000", "a-b", "1-", "-1", b"\xff\xfe", "1 - 2"])
def test_parse_stream_id_refuses(text: str | bytes) -> None:
    with pytest.raises(StreamIdError):
        parse_stream_id(text)


def test_stream_id_ordering_is_numeric_not_lexicographic() -> None:
    ids = [StreamId(10, 0), StreamId(9, 5), StreamId(9, 10), StreamId(100, 0), StreamId(9, 9)]
    assert sorted(ids) == [StreamId(9, 5), StreamId(9, 9), StreamId(9, 10), StreamId(10, 0), StreamId(100, 0)]
    assert StreamId(9, 10) > StreamId(9, 9)
    assert str(StreamId(9, 10)) == "9-10"
    assert StreamId(9, 10).exclusive() == "(9-10"
    assert StreamId(CUTOVER_MS).seconds == 1_768_023_795.0


@given(
    st.tuples(st.integers(0, 2**41), st.integers(0, SEQ_MAX)),
    st.tuples(st.integers(0, 2**41), st.integers(0, SEQ_MAX)),
)
def test_packed_ids_keep_the_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    first, second = StreamId(*a), StreamId(*b)
    assert (first.packed() < second.packed()) == (first < second)
    assert (first.packed() == second.packed()) == (first == second)
    assert first.packed() >> SEQ_BITS == first.ms  # how windows read the ms back (keys >> SEQ_BITS)


def test_packed_sequence_is_clamped_not_wrapped() -> None:
    assert StreamId(7, SEQ_MAX + 5).packed() == StreamId(7, SEQ_MAX).packed()
    assert StreamId(7, SEQ_MAX + 5).packed() < StreamId(8, 0).packed()


def test_datetime_to_stream_id_refuses_naive() -> None:
    with pytest.raises(StreamIdError, match="zone"):
        datetime_to_stream_id(datetime(2026, 1, 10, 5, 43, 15))
    aware = datetime(2026, 1, 10, 6, 43, 15, tzinfo=timezone(timedelta(hours=1)))
    assert datetime_to_stream_id(aware) == StreamId(CUTOVER_MS, 0)


def test_iso_rendering_is_utc_with_z() -> None:
    assert stream_id_to_iso(StreamId(CUTOVER_MS, 9)) == "2026-01-10T05:43:15.000Z"
    assert ms_to_iso(CUTOVER_MS + 7) == "2026-01-10T05:43:15.007Z"
    assert ms_to_iso(2**63) == f"epoch-ms:{2**63}"  # beyond datetime: still a string, no exception


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_iso_round_trip(moment: datetime) -> None:
    stream_id = cutover_to_stream_id(moment.isoformat())
    assert stream_id.seq == 0
    expected_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert stream_id.ms == expected_ms
    assert cutover_to_stream_id(stream_id_to_iso(stream_id)) == stream_id


@given(st.text(max_size=40))
def test_any_text_is_a_stream_id_or_a_stream_id_error(text: str) -> None:
    try:
        stream_id = cutover_to_stream_id(text)
    except StreamIdError:
        return
    assert 0 <= stream_id.ms <= 2**64 - 1
    assert 0 <= stream_id.seq <= 2**64 - 1
