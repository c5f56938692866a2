"""The one TLS context every HTTP client of the bot verifies servers with."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def context() -> ssl.SSLContext:
    """httpx's default context (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` if set, else certifi's
    bundle; certificates and host names checked), made once: loading a bundle costs about
    20 ms of CPU, and a client is made per feed proxy, per Telegram token and per reload that
    changes destinations."""
    return httpx.create_ssl_context()
