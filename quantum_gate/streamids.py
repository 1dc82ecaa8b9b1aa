"""Redis stream IDs and the cutover forms operators type, as pure functions.

A stream ID ``<ms>-<seq>`` is Redis server time at XADD: the only clock on the stream that is reliable
for ordering and for the cutover filter. Every time here is UTC; a time without a zone is read as UTC,
never as the host's local time (documented in docs/cutover.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_ID_RE = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_DIGITS_RE = re.compile(r"^\d{1,20}(\.\d+)?$")
_MAX_U64 = 2**64 - 1
# Epoch values at or above this many are milliseconds (seconds would be the year 33658).
_MS_THRESHOLD = 10**12
# Windows pack an ID into one int64: ms in the high bits, the sequence (clamped) in the low 22 bits;
# ``key >> SEQ_BITS`` is the ms (on one key or a numpy column of them alike).
SEQ_BITS = 22
SEQ_MAX = (1 << SEQ_BITS) - 1
INT64_MAX = 2**63 - 1
# The newest millisecond a window can hold: 2199023255551 ms, 2039-09-07T15:47:35.551Z. Later IDs are
# valid in Redis (up to 18446744073709551615-18446744073709551615) but cannot be packed; the contract
# skips them as ``stream_id_out_of_range`` (docs/contract.md) instead of windowing a wrong key.
PACKED_MS_MAX = INT64_MAX >> SEQ_BITS


class StreamIdError(ValueError):
    """A value that cannot be read as a cutover or stream ID (the message says why)."""


class AmbiguousZoneError(StreamIdError):
    """A well-formed time whose zone is not one fixed offset (``CST``, ``Europe/Berlin``): never guessed."""


# systemd's timestamp form, as `systemctl show` prints it: ``Sat 2026-01-10 05:43:15 UTC``, the weekday
# optional, microseconds optional, and a zone: a tz abbreviation or a numeric one (``+0100``, ``+03``).
_SYSTEMD_RE = re.compile(
    r"^(?:([A-Za-z]{3})\s+)?(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?\s+(\S+)$"
)
_OFFSET_RE = re.compile(r"^([+-])(\d{2})(?::?(\d{2}))?$")
_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UCT", "Etc/UTC", "Universal"})
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Zone abbreviations systemd prints (it takes them from the tz database) that name exactly one UTC offset
# there, in minutes. tests/test_streamids.py checks each against the machine's tz database. Anything
# else (CST: US Central, China or Cuba; IST: India, Ireland or Israel; PST: US Pacific or Philippines;
# CDT) is refused rather than guessed: a wrong guess moves the cutover by hours.
ZONE_ABBREVIATIONS: dict[str, int] = {
    "WET": 0, "WEST": 60, "BST": 60, "CET": 60, "CEST": 120, "MET": 60, "MEST": 120,
    "EET": 120, "EEST": 180, "MSK": 180, "IDT": 180, "WAT": 60, "CAT": 120, "SAST": 120, "EAT": 180,
    "PKT": 300, "WIB": 420, "WITA": 480, "WIT": 540, "HKT": 480, "AWST": 480, "JST": 540, "KST": 540,
    "ACST": 570, "ACDT": 630, "AEST": 600, "AEDT": 660, "ChST": 600, "NZST": 720, "NZDT": 780,
    "NST": -210, "NDT": -150, "AST": -240, "ADT": -180, "EST": -300, "EDT": -240, "MST": -420,
    "MDT": -360, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600, "HDT": -540, "SST": -660,
}  # fmt: skip
AMBIGUOUS_ZONES: dict[str, str] = {
    "CST": "US Central, China or Cuba",
    "CDT": "US Central or Cuba",
    "IST": "India, Ireland or Israel",
    "PST": "US Pacific or the Philippines",
}


@dataclass(frozen=True, order=True, slots=True)
class StreamId:
    ms: int
    seq: int = 0

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    @property
    def seconds(self) -> float:
        return self.ms / 1000.0

    def packed(self) -> int:
        """One sortable int64 (seq above 4,194,303 within one ms is clamped: never seen from XADD)."""
        return (self.ms << SEQ_BITS) | min(self.seq, SEQ_MAX)

    def windowable(self) -> bool:
        """Whether ``packed()`` fits the int64 key column of a window."""
        return self.ms <= PACKED_MS_MAX

    def packed_clamped(self) -> int:
        """``packed()``, or the largest key when the ID lies beyond the packed range: a bound that
        sorts after every windowable ID (a cutover or a skipped entry's position, never an event)."""
        return min(self.packed(), INT64_MAX)

    def exclusive(self) -> str:
        """The exclusive range bound for XRANGE/XREVRANGE continuation (Redis >= 6.2)."""
        return f"({self}"


def parse_stream_id(text: str | bytes) -> StreamId:
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    match = _ID_RE.match(raw.strip())
    if not match:
        raise StreamIdError(f"not a stream ID: {raw[:64]!r}")
    ms, seq = int(match.group(1)), int(match.group(2))
    if ms > _MAX_U64 or seq > _MAX_U64:
        raise StreamIdError(f"stream ID out of range: {raw[:64]!r}")
    return StreamId(ms, seq)


def datetime_to_stream_id(moment: datetime) -> StreamId:
    if moment.tzinfo is None:
        raise StreamIdError("a time without a zone is ambiguous here; pass UTC explicitly")
    ms = _epoch_ms(moment)
    if ms < 0:
        raise StreamIdError(f"{moment.isoformat()} is before 1970: no stream ID exists for it")
    return StreamId(ms, 0)


def _epoch_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def parse_iso(text: str) -> datetime:
    """ISO 8601 with ``Z`` or an offset; a naive time is UTC (the producer writes naive UTC)."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise StreamIdError(f"not an ISO 8601 time: {text[:64]!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC date
        raise StreamIdError(f"time out of range: {text[:64]!r}") from None


def is_systemd_timestamp(text: str) -> bool:
    return _SYSTEMD_RE.match(text.strip()) is not None


def parse_systemd_timestamp(text: str) -> datetime:
    """``Sat 2026-01-10 05:43:15 UTC`` (also ``+0100``, ``+03``, ``CET``) as an aware UTC datetime.

    Raises AmbiguousZoneError for a zone that is not one fixed offset, StreamIdError for anything
    else that is not a real moment (2026-13-45, 25:61, +99:99, a weekday that does not match the date).
    """
    match = _SYSTEMD_RE.match(text.strip())
    if not match:
        raise StreamIdError(f"not a systemd timestamp: {text[:64]!r}")
    weekday, day, clock, fraction, zone = match.groups()
    where = _fixed_zone(zone, text)
    try:  # a well-formed line can still name no real moment: 2026-13-45, 25:61
        moment = datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0').ljust(6, '0')}")
        moment = moment.replace(tzinfo=where).astimezone(UTC)
    except (ValueError, OverflowError):
        raise StreamIdError(f"not a real time: {text[:64]!r}") from None
    local_weekday = _WEEKDAYS[moment.astimezone(where).weekday()]
    if weekday is not None and weekday.capitalize() != local_weekday:  # a typo in the date, most likely
        raise StreamIdError(f"{day} is a {local_weekday}, not a {weekday}: {text[:64]!r}")
    return moment


def _fixed_zone(zone: str, text: str) -> tzinfo:
    if zone in _UTC_NAMES:
        return UTC
    offset = _OFFSET_RE.match(zone)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        try:
            return timezone(sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0)))
        except ValueError:  # +99:99: not an offset any clock uses
            raise StreamIdError(f"not a UTC offset: {zone[:16]!r} in {text[:64]!r}") from None
    if zone in ZONE_ABBREVIATIONS:
        return timezone(timedelta(minutes=ZONE_ABBREVIATIONS[zone]))
    readings = AMBIGUOUS_ZONES.get(zone)
    what = f"is ambiguous ({readings})" if readings else "is unknown or ambiguous"
    raise AmbiguousZoneError(
        f"time zone {zone[:32]!r} {what}; give the time in UTC or with an offset such as +01:00"
    )


def cutover_to_stream_id(text: str) -> StreamId:
    """Any cutover form an operator types -> the first stream ID at or after it.

    Accepted: a stream ID (``1768023795000-0``), epoch seconds or milliseconds (``1768023795``,
    ``1768023795000``, ``@1768023795`` as systemd prints it), ISO 8601 with ``Z`` or an offset,
    naive ISO 8601 which is taken as UTC, and systemd's own form (``Sat 2026-01-10 05:43:15 UTC``, as
    ``systemctl show`` prints ActiveEnterTimestamp). Worked value: ``2026-01-10T05:43:15Z`` ->
    ``1768023795000-0``.
    """
    value = text.strip()
    if not value:
        raise StreamIdError("empty cutover")
    if _ID_RE.match(value):
        return parse_stream_id(value)
    epoch_text = value[1:] if value.startswith("@") else value
    if _DIGITS_RE.match(epoch_text):
        number = float(epoch_text) if "." in epoch_text else int(epoch_text)
        ms = int(number) if number >= _MS_THRESHOLD else round(number * 1000)
        if ms > _MAX_U64:
            raise StreamIdError(f"epoch value out of range: {value[:64]!r}")
        return StreamId(ms, 0)
    if is_systemd_timestamp(value):
        return datetime_to_stream_id(parse_systemd_timestamp(value))
    return datetime_to_stream_id(parse_iso(value))


def stream_id_to_iso(stream_id: StreamId) -> str:
    return ms_to_iso(stream_id.ms)


def ms_to_iso(ms: int) -> str:
    try:  # integer arithmetic: ms / 1000.0 loses the last millisecond for far-future IDs
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    except (OverflowError, OSError, ValueError):
        return f"epoch-ms:{ms}"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
