"""Redis URLs as careless users write them: passwords with URL delimiters in them, odd database numbers,
and sentinels that know no such master (docs/redis.md)."""

from __future__ import annotations

import pytest
import redis
from conftest import free_port

from quantum_gate.config import Settings
from quantum_gate.connection import open_client, parse_redis_url

SECRET = "Pa55/w?rd#x"
PIECES = ("Pa55", "w?rd", "rd#x", "/w", "?rd")


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{SECRET}@127.0.0.1:26379/mymaster",
        f"redis+sentinel://user:{SECRET}@127.0.0.1:26379,127.0.0.1:26380/mymaster/0",
        f"rediss+sentinel://{SECRET}@[::1]:26379/mymaster",
        f"redis+cluster://user:{SECRET}@127.0.0.1:7000",
        "redis+sentinel://:ab/cd@127.0.0.1:26379/mymaster",
        "redis+cluster://u:se?cret@127.0.0.1:7000",
    ],
)
def test_an_unencoded_delimiter_in_the_password_is_refused_without_showing_any_of_it(url: str) -> None:
    """A raw '/', '?' or '#' ends the host list early, so the rest of the password used to be shown as a
    "host", a "parameter" or a path: the message must name the problem and none of the secret."""
    with pytest.raises(ValueError, match="percent-encode") as raised:
        parse_redis_url(url)
    message = str(raised.value)
    userinfo = url.partition("://")[2].rpartition("@")[0]
    for piece in (*PIECES, *userinfo.replace(":", "/").split("/")):
        if len(piece) >= 2 and piece != "user":
            assert piece not in message, message


def test_the_percent_encoded_password_is_read_whole() -> None:
    target = parse_redis_url("redis+sentinel://:Pa55%2Fw%3Frd%23x@127.0.0.1:26379/mymaster")
    assert target.password == SECRET and target.master_name == "mymaster"


@pytest.mark.parametrize("db", ["\u00b2", "\u0661"])
def test_a_database_that_is_not_an_ascii_number_is_named(db: str) -> None:
    with pytest.raises(ValueError, match="the database must be a number"):
        parse_redis_url(f"redis+sentinel://127.0.0.1:26379/mymaster/{db}")


def test_no_sentinel_up_is_one_readable_line_naming_the_master() -> None:
    """redis-py's MasterNotFoundError carries the repr of its internal client (hundreds of characters of
    connection arguments): the operator needs the master name and the sentinels asked."""
    port = free_port()
    settings = Settings.model_validate(
        {"redis": {"url": f"redis+sentinel://127.0.0.1:{port}/mymaster", "socket_timeout_seconds": 1}}
    )
    with pytest.raises(redis.ConnectionError) as raised:
        open_client(settings)
    message = str(raised.value)
    assert "mymaster" in message and f"127.0.0.1:{port}" in message
    assert "<redis" not in message and "\n" not in message and len(message) < 300
