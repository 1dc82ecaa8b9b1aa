"""Redis stream IDs and the cutover forms operators type, as pure functions.

A stream ID ``<ms>-<seq>`` is Redis server time at XADD: the only clock on the stream that is reliable
for ordering and for the cutover filter. Every time here is UTC; a time without a zone is read as UTC,
never as the host's local time (documented in docs/cutover.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_ID_RE = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_DIGITS_RE = re.compile(r"^\d{1,20}(\.\d+)?$")
_MAX_U64 = 2**64 - 1
# Epoch values at or above this many are milliseconds (seconds would be the year 33658).
_MS_THRESHOLD = 10**12
# Windows pack an ID into one int64: ms in the high bits, the sequence (clamped) in the low 22 bits.
SEQ_BITS = 22
SEQ_MAX = (1 << SEQ_BITS) - 1
INT64_MAX = 2**63 - 1
# The newest millisecond a window can hold: 2199023255551 ms, 2039-09-07T15:47:35.551Z. Later IDs are
# valid in Redis (up to 18446744073709551615-18446744073709551615) but cannot be packed; the contract
# skips them as ``stream_id_out_of_range`` (docs/contract.md) instead of windowing a wrong key.
PACKED_MS_MAX = INT64_MAX >> SEQ_BITS


class StreamIdError(ValueError):
    """A value that cannot be read as a cutover or stream ID (the message says why)."""


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


def unpack_ms(packed: int) -> int:
    return packed >> SEQ_BITS


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


def cutover_to_stream_id(text: str) -> StreamId:
    """Any cutover form an operator types -> the first stream ID at or after it.

    Accepted: a stream ID (``1768023795000-0``), epoch seconds or milliseconds (``1768023795``,
    ``1768023795000``, ``@1768023795`` as systemd prints it), ISO 8601 with ``Z`` or an offset, and
    naive ISO 8601 which is taken as UTC. Worked value: ``2026-01-10T05:43:15Z`` -> ``1768023795000-0``.
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
    return datetime_to_stream_id(parse_iso(value))


def stream_id_to_iso(stream_id: StreamId) -> str:
    return ms_to_iso(stream_id.ms)


def ms_to_iso(ms: int) -> str:
    try:  # integer arithmetic: ms / 1000.0 loses the last millisecond for far-future IDs
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    except (OverflowError, OSError, ValueError):
        return f"epoch-ms:{ms}"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
