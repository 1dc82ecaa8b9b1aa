"""A docstring, comment or document that cites a test file cites one that exists (issue 13.7: one cited
``tests/test_readonly.py`` long after it became ``tests/test_hardening_access.py``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"\btests/[A-Za-z0-9_/]+\.py\b")


def test_every_cited_test_file_exists() -> None:
    sources = [
        *sorted((ROOT / "quantum_gate").glob("*.py")),
        *sorted((ROOT / "bench").glob("*.py")),
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "README.md",
    ]
    cited = {
        (source.relative_to(ROOT).as_posix(), path)
        for source in sources
        for path in CITED.findall(source.read_text(encoding="utf-8"))
    }
    assert len(cited) >= 5  # the pattern finds the citations there are
    missing = sorted((source, path) for source, path in cited if not (ROOT / path).is_file())
    assert missing == []
