"""The one TLS context every HTTP client of the bot verifies servers with."""

from __future__ import annotations

import functools
import os
import ssl

import certifi


@functools.cache
def context() -> ssl.SSLContext:
    """What httpx makes by default (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` if set, else
    certifi's bundle; certificates and host names checked), made once: loading a bundle costs
    about 20 ms of CPU, and a client is made per feed proxy, per Telegram token and per
    reload that changes destinations."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())
