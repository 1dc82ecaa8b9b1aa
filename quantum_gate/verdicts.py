"""The gate's three verdicts, as one type: a misspelt verdict cannot be constructed.

A ``StrEnum``: each member is its value as a ``str`` (``str()``, f-strings, ``json.dumps``, structlog,
dictionary keys, SQLite), so documents, metrics, logs and exit codes read exactly the strings they
always did. Declared in the order the exporter's one-hot ``verdict`` gauges list them.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    # Fail closed: too little evidence to decide (no cutover, too few events or samples, a rollout
    # in progress) is never a PASS.
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
