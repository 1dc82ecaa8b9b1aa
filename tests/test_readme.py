"""What the README promises a newcomer in its first minutes is true (issue 10.5, 10.8)."""

from __future__ import annotations

import re

from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return re.split(r"(?<=[.)])\s+(?=[A-Z`])", flat)


def ci_tools() -> set[str]:
    """The tools .ci/run installs before it runs `make test`."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    return set(re.findall(r"command -v ([\w-]+) >/dev/null", script))


def test_the_sentence_that_names_python_names_what_make_test_needs_too() -> None:
    """Issue 10.8: "Both need only Python 3.11+" was not true of `make test`."""
    tools = ci_tools()
    assert {"redis-server", "chromium", "promtool", "amtool", "openssl"} <= tools
    python = [sentence for sentence in sentences(README) if "Python 3.11" in sentence]
    assert python, "the README names the Python it needs"
    for sentence in python:
        missing = sorted(tool for tool in tools if f"`{tool}`" not in sentence)
        assert "`make test`" in sentence and not missing, (sentence, missing)
    assert "Both need only Python" not in README


def test_the_readme_says_how_to_move_make_run() -> None:
    assert "make run ARGS='--listen 127.0.0.1:9732'" in README
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^\t\$\(BIN\)/quantum-gate demo \$\(ARGS\)$", makefile, re.MULTILINE)
