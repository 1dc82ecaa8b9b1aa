"""The request-head caps as a pure function (the selector thread's checks, without sockets)."""

from __future__ import annotations

from quantum_gate.config import HttpSettings
from quantum_gate.request_head import examine_head, refusal_bytes

LIMITS = HttpSettings(max_request_line_bytes=256, max_header_bytes=1024, max_body_bytes=100)


def test_an_incomplete_head_waits_and_a_complete_one_says_how_many_bytes_the_request_needs() -> None:
    assert examine_head(bytearray(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), LIMITS) == (None, None)
    head = b"POST /gate HTTP/1.1\r\nContent-Length: 7\r\n\r\n"
    assert examine_head(bytearray(head), LIMITS) == (None, len(head) + 7)
    bare = b"GET / HTTP/1.0\n\n"  # bare newlines count as the end of the head too
    assert examine_head(bytearray(bare), LIMITS) == (None, len(bare))


def test_each_cap_has_its_own_status() -> None:
    long_line = bytearray(b"GET /" + b"a" * 300)
    assert examine_head(long_line, LIMITS) == ((414, "URI Too Long"), None)
    big_head = bytearray(b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"b" * 1100 + b"\r\n")
    assert examine_head(big_head, LIMITS) == ((431, "Request Header Fields Too Large"), None)
    big_body = bytearray(b"POST /gate HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    assert examine_head(big_body, LIMITS) == ((413, "Content Too Large"), None)


def test_a_malformed_length_is_left_to_the_handler_with_no_body_expected() -> None:
    head = b"POST /gate HTTP/1.1\r\nContent-Length: -5\r\n\r\n"
    assert examine_head(bytearray(head), LIMITS) == (None, len(head))


def test_a_refusal_is_a_whole_answer_with_the_configured_headers() -> None:
    answer = refusal_bytes(413, "Content Too Large", [("X-Frame-Options", "DENY")])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.0 413 Content Too Large"
    assert b"X-Frame-Options: DENY" in head and b"Connection: close" in head
    assert body == b"413 Content Too Large\n" and f"Content-Length: {len(body)}".encode() in head
