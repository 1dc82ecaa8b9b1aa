"""The caps on a request head, checked on the bytes collected so far (pure; httpserver.py's selector
thread calls it after every read, before any handler sees the request)."""

from __future__ import annotations

from collections.abc import Iterable

from quantum_gate.config import HttpSettings


def examine_head(buffer: bytearray, limits: HttpSettings) -> tuple[tuple[int, str] | None, int | None]:
    """(refusal, needed): a status and reason when a cap is exceeded; otherwise the bytes the whole
    request needs (head + declared body) once the head is complete, None while it is not."""
    line_end = buffer.find(b"\n")
    if line_end > limits.max_request_line_bytes or (
        line_end == -1 and len(buffer) > limits.max_request_line_bytes
    ):
        return (414, "URI Too Long"), None
    head_end = _head_end(buffer)
    if head_end is None or head_end > limits.max_header_bytes:
        if len(buffer) > limits.max_header_bytes:
            return (431, "Request Header Fields Too Large"), None
        return None, None
    length = _content_length(bytes(buffer[:head_end]))
    if length is not None and length > limits.max_body_bytes:
        return (413, "Content Too Large"), None
    # No length, or a malformed one: the handler answers (400 for a bad one) without a body.
    return None, head_end + (length or 0)


def refusal_bytes(status: int, reason: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """A whole HTTP/1.0 answer for a refused request, with the web configuration's extra headers."""
    body = f"{status} {reason}\n".encode("ascii")
    lines = [
        f"HTTP/1.0 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _head_end(buffer: bytearray) -> int | None:
    """Where the request head ends (after its blank line), or None while it is incomplete."""
    ends = [index + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (index := buffer.find(mark)) != -1]
    return min(ends) if ends else None


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return None
