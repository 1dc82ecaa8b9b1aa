"""The report files: ``quality_gate_<UTC stamp>.md`` and ``.json`` written atomically (temp file +
fsync + rename), and their retention (the newest ``daemon.reports_keep`` pairs, none older than
``daemon.reports_max_age_days``). Only names this program gives are ever removed.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quantum_gate.report import dumps, render_markdown

REPORT_PREFIX = "quality_gate_"
REPORT_SUFFIXES = (".json", ".md")
_STAMP_FORMAT = "%Y%m%dT%H%M%S"


def report_stamp(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, tz=UTC).strftime(_STAMP_FORMAT) + f"{int(seconds * 1000) % 1000:03d}Z"
    )


def write_report(directory: Path, document: dict[str, Any]) -> Path:
    """Writes ``quality_gate_<UTC stamp>.md`` and ``.json`` atomically; returns the JSON path."""
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"{REPORT_PREFIX}{report_stamp(document['evaluated_at_seconds'])}"
    _atomic_write(base.with_suffix(".md"), render_markdown(document).encode("utf-8"))
    json_path = base.with_suffix(".json")
    _atomic_write(json_path, dumps(document) + b"\n")
    return json_path


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---- retention -------------------------------------------------------------------------------------


def report_time(stem: str) -> float | None:
    """The UTC time in a report's name (``quality_gate_20260110T054315123Z``), or None for any other
    name: retention only ever touches files this program named."""
    if not stem.startswith(REPORT_PREFIX):
        return None
    stamp = stem[len(REPORT_PREFIX) :]
    if len(stamp) != 19 or not stamp.endswith("Z") or not stamp[15:18].isdigit():
        return None
    try:
        moment = datetime.strptime(stamp[:15], _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + int(stamp[15:18]) / 1000


def reports_to_remove(stems: list[str], *, keep: int, max_age_seconds: float | None, now: float) -> list[str]:
    """Pure: which report names (stems) go. The newest ``keep`` stay unless older than
    ``max_age_seconds``; names that are not report names are never chosen."""
    times = {stem: report_time(stem) for stem in set(stems)}
    dated = sorted(((when, stem) for stem, when in times.items() if when is not None), reverse=True)
    going = [stem for _, stem in dated[keep:]]
    if max_age_seconds is not None:
        going += [stem for when, stem in dated[:keep] if now - when > max_age_seconds]
    return sorted(going)


def prune_reports(directory: Path, *, keep: int, max_age_seconds: float | None, now: float) -> list[Path]:
    """Removes the report pairs (``.md`` and ``.json``) ``reports_to_remove`` picks; returns the files
    removed. A missing folder holds nothing to remove."""
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    stems = [name[: -len(suffix)] for name in names for suffix in REPORT_SUFFIXES if name.endswith(suffix)]
    removed: list[Path] = []
    for stem in reports_to_remove(stems, keep=keep, max_age_seconds=max_age_seconds, now=now):
        for suffix in REPORT_SUFFIXES:
            path = directory / f"{stem}{suffix}"
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
