"""Authenticated content distribution: ``X-Hub-Signature: method=hex``, the HMAC of the body
keyed with the subscription's ``hub.secret`` (WebSub section 8)."""

from __future__ import annotations

import hashlib
import hmac

ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """The header value a hub sends for ``body``."""
    return f"{method}={hmac.new(secret.encode(), body, ALGORITHMS[method]).hexdigest()}"


def check_signature(header: str | None, body: bytes, secret: str) -> str | None:
    """None when ``header`` signs ``body`` with ``secret``; else why not (missing, an unknown
    method, or a mismatch). The comparison takes the same time wherever it differs."""
    if not header or not header.strip():
        return "missing"
    method, sep, given = header.strip().partition("=")
    digest = ALGORITHMS.get(method.strip().lower())
    if not sep or digest is None:
        return "unknown method"
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        return "mismatch"
    return None
