"""What successive XINFO readings of the stream tell: entries trimmed before they were read, and resets.

``StreamInfo`` is one reading (``stream.stream_info`` takes it); ``GapTracker`` is the bookkeeping over
them. Pure: no Redis here (docs/architecture.md, "Stream resets").
"""

from __future__ import annotations

from dataclasses import dataclass

from quantum_gate.streamids import StreamId


@dataclass(frozen=True)
class StreamInfo:
    length: int
    entries_added: int | None
    last_generated: StreamId | None
    first: StreamId | None
    last: StreamId | None


@dataclass
class GapTracker:
    """Counts entries that were trimmed before we read them, and stream resets (DEL, XTRIM to 0).

    Pure bookkeeping over successive ``StreamInfo`` readings. Loss is settled at sync points, when the
    last ID we read equals the stream's last generated ID: everything added since the previous sync
    that we did not read was lost. While we lag, nothing is concluded yet.
    """

    synced_added: int | None = None
    read_since_sync: int = 0
    lost: int = 0
    resets: int = 0
    missing: bool = False
    last_length: int | None = None
    last_added: int | None = None
    last_entry: StreamId | None = None

    def note_read(self, count: int) -> None:
        self.read_since_sync += count

    def observe(self, info: StreamInfo | None, last_read: StreamId | None) -> str | None:
        """Feed one XINFO reading; returns "reset" or "lost" when something happened, else None."""
        if info is None:
            existed = self.last_length is not None and not self.missing
            self.missing = True
            self.synced_added = None
            if existed:  # a key that never existed (the daemon started first) was not deleted
                self.resets += 1
                return "reset"
            return None
        event: str | None = None
        recreated = self.missing or (
            self.synced_added is not None
            and info.entries_added is not None
            and info.entries_added < self.synced_added
        )
        emptied = info.length == 0 and (self.last_length or 0) > 0
        if (recreated and not self.missing) or emptied or self._wiped(info):
            self.resets += 1
            event = "reset"
        if recreated:
            self.synced_added = None
        self.missing = False
        self.last_length = info.length
        self.last_added = info.entries_added
        self.last_entry = info.last
        if info.entries_added is None or info.last_generated is None:
            return event
        if last_read is not None and last_read >= info.last_generated:
            if self.synced_added is not None:
                gap = info.entries_added - self.synced_added - self.read_since_sync
                if gap > 0:
                    self.lost += gap
                    event = event or "lost"
            self.synced_added = info.entries_added
            self.read_since_sync = 0
        return event

    def _wiped(self, info: StreamInfo) -> bool:
        """Emptied and refilled between two readings (``XTRIM MAXLEN 0`` while the producer writes):
        every entry of the previous reading is gone although far fewer were added than it held, which
        no ``MAXLEN`` trim can do (it keeps at least as many as it is given)."""
        if self.last_entry is None or self.last_added is None or info.entries_added is None:
            return False
        if info.length == 0 or info.first is None or info.first <= self.last_entry:
            return False
        added = info.entries_added - self.last_added
        return added >= 0 and added * 2 < (self.last_length or 0)
