"""What is wrong with Redis or with the stream key, in one line for ``/healthz``, the status page, the
log and the one-shot commands: "unreachable", "timeout", or the code Redis answered with (WRONGTYPE,
NOAUTH, WRONGPASS, NOPERM, BUSY, LOADING, ...), never the same "redis unreachable" for all of them.

``describe_redis_error`` is pure; ``key_type`` is the one read command (TYPE) it may need.
"""

from __future__ import annotations

import redis

MAX_DETAIL = 200


class StreamMissing(Exception):  # noqa: N818 - a state of the stream, not a programming error
    """The stream key does not exist on this Redis (check/diagnose: one line, exit 2)."""

    def __init__(self, key: str) -> None:
        super().__init__(missing_stream_message(key))
        self.key = key


class StreamWrongType(Exception):  # noqa: N818 - a state of the stream, not a programming error
    """The key exists but is not a stream (check/diagnose: one line, exit 1)."""

    def __init__(self, key: str, key_type: str) -> None:
        super().__init__(wrong_type_message(key, key_type))
        self.key = key
        self.key_type = key_type


def missing_stream_message(key: str) -> str:
    return f"stream {key} does not exist on this Redis"


def wrong_type_message(key: str, key_type: str) -> str:
    return f"WRONGTYPE: key {key} is a {key_type}, not a stream"


def is_wrong_type(exc: BaseException) -> bool:
    return isinstance(exc, redis.ResponseError) and (
        getattr(exc, "status_code", None) == "WRONGTYPE" or str(exc).startswith("WRONGTYPE")
    )


def key_type(client: redis.Redis, key: str) -> str:
    """TYPE of the key (``none`` when it does not exist); a read command."""
    answer = client.type(key)
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def describe_redis_error(exc: BaseException) -> str:
    """One line naming the condition: ``unreachable (...)``, ``timeout (...)`` or ``CODE: message``
    with the error code Redis sent (redis-py keeps it as ``status_code``). Redis error messages do not
    carry the password, and connection errors name only host and port."""
    detail = _first_line(exc)
    code = getattr(exc, "status_code", None)
    if isinstance(exc, redis.TimeoutError):
        return f"timeout: no answer ({detail}); Redis paused, blocked or overloaded"
    if code:  # redis-py strips the code from some messages and not from others (BUSY)
        detail = detail.removeprefix(f"{code} ").strip()
        return f"{code}: {detail}" if detail else str(code)
    if isinstance(exc, redis.AuthenticationError):
        return f"authentication failed: {detail}"
    if isinstance(exc, redis.ConnectionError | OSError):
        return f"unreachable ({detail})"
    word = detail.split(" ", 1)[0]
    if isinstance(exc, redis.ResponseError) and word.isupper():
        return f"{word}: {detail[len(word) :].strip()}"
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:MAX_DETAIL] if text else ""
