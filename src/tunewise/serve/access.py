"""Who may call the server, and how often: API keys (kept only as sha256 hashes) and a token bucket per key.

Keys come from `TUNEWISE_API_KEYS` (comma-separated) or a file of their sha256 hex digests, one a line (so the
file holds no secret). A key is named in logs and traffic by the first 12 hex digits of its hash, never itself.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.errors import InputError

KEYS_ENV = "TUNEWISE_API_KEYS"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id(digest: str) -> str:
    """How a key is named where it is logged."""
    return digest[:12]


@dataclass(frozen=True)
class Keys:
    """The sha256 digests of the keys that may call; an empty set with `required` False means no auth."""

    digests: frozenset[str]
    required: bool = True

    @classmethod
    def load(cls, *, keys_file: Path | None = None, no_auth: bool = False, environ: dict[str, str] | None = None) -> Keys:
        if no_auth:
            return cls(frozenset(), required=False)
        digests: set[str] = set()
        env = os.environ if environ is None else environ
        digests |= {key_hash(k.strip()) for k in env.get(KEYS_ENV, "").split(",") if k.strip()}
        if keys_file is not None:
            try:
                lines = keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise InputError(f"cannot read the API keys file: {e.strerror}", file=keys_file) from None
            for number, line in enumerate(lines, start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if len(line) != 64 or any(c not in "0123456789abcdef" for c in line.lower()):
                    raise InputError("each line must be the sha256 hex digest of a key (64 hex digits)",
                                     file=keys_file, line=number)
                digests.add(line.lower())
        if not digests:
            raise InputError(f"no API keys: set {KEYS_ENV} (comma-separated), give --api-keys-file (their sha256"
                             " digests), or serve without keys with --no-auth")
        return cls(frozenset(digests))

    def check(self, authorization: str | None) -> str | None:
        """The calling key's id, or None when auth is off; ValueError when the header holds no valid key."""
        if not self.required:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ValueError("an API key is required: Authorization: Bearer <key>")
        digest = key_hash(token.strip())
        if not any(hmac.compare_digest(digest, d) for d in self.digests):
            raise ValueError("invalid API key")
        return key_id(digest)


@dataclass
class RateLimit:
    """A token bucket per key: `per_minute` requests a minute, in bursts of up to that many."""

    per_minute: float
    _buckets: dict[str | None, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str | None, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it may (for Retry-After)."""
        now = time.monotonic() if now is None else now
        tokens, since = self._buckets.get(key, (self.per_minute, now))
        tokens = min(self.per_minute, tokens + (now - since) * self.per_minute / 60)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) * 60 / self.per_minute


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
