"""``Authorization: Basic`` against the web configuration file's bcrypt hashes (``basic_auth_users``),
with a short cache of verified credentials (``http.auth_cache_seconds``): docs/security.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import bcrypt


@dataclass
class _Dummy:
    """A valid hash of a random password: an unknown user costs one bcrypt round too, so response time
    does not tell which user names exist. Made on first use (about 50 ms), not at import."""

    hashed: bytes | None = None

    def get(self) -> bytes:
        if self.hashed is None:
            self.hashed = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=10))
        return self.hashed


_DUMMY = _Dummy()


class BasicAuth:
    """``Authorization: Basic`` against bcrypt hashes. A verified (user, password) is remembered as an
    HMAC under a per-process random key for ``cache_seconds`` (a 1 s scrape interval must not cost a
    bcrypt round per scrape); only successes are remembered, at most ``max_cached`` of them. bcrypt
    rounds run one at a time, so wrong passwords cannot take every core."""

    def __init__(
        self,
        users: Mapping[str, bytes],
        *,
        cache_seconds: float,
        max_cached: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = dict(users)
        self._cache_seconds = cache_seconds
        self._max_cached = max_cached
        self._clock = clock
        self._key = os.urandom(32)
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        self.bcrypt_rounds = 0  # for tests: how many times bcrypt actually ran

    def __repr__(self) -> str:
        return f"BasicAuth(users={len(self._users)})"

    def check(self, header: str | None) -> bool:
        credentials = parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._key, user.encode() + b"\0" + password, hashlib.sha256).digest()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user)
        if cached is not None and cached[1] > now and hmac.compare_digest(cached[0], digest):
            return True
        hashed = self._users.get(user)
        with self._bcrypt:
            self.bcrypt_rounds += 1
            ok = _checkpw(password, hashed or _DUMMY.get()) and hashed is not None
        if ok and self._cache_seconds > 0:
            with self._lock:
                self._cache[user] = (digest, now + self._cache_seconds)
                self._cache.move_to_end(user)
                while len(self._cache) > self._max_cached:
                    self._cache.popitem(last=False)
        return ok


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes: no stored hash can match one
        return False


def parse_basic(header: str | None) -> tuple[str, bytes] | None:
    """(user, password bytes) from ``Basic base64(user:password)``; None for anything else."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None
