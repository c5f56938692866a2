"""``python -m alerts.healthcheck [URL]``: exit 0 when ``/healthz`` answers 200, else 1.

The Docker image's HEALTHCHECK runs this: the slim image has no curl, and this needs nothing but
the standard library (it imports nothing else from chipwatch, so it starts fast). Without a URL
it asks the address ``run`` listens on: ``CHIPWATCH_OPS_LISTEN`` when set (an "every interface"
address such as 0.0.0.0 is asked on loopback), else the default 127.0.0.1:9108.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

DEFAULT_LISTEN = "127.0.0.1:9108"
TIMEOUT_SECONDS = 8.0
_ANY = {"", "0.0.0.0", "::", "[::]"}


def url_from_env(environ: Mapping[str, str]) -> str | None:
    """The /healthz URL for the configured listen address; None when the endpoint is off."""
    listen = environ.get("CHIPWATCH_OPS_LISTEN", DEFAULT_LISTEN).strip()
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    if host in _ANY:
        host = "[::1]" if host in ("::", "[::]") else "127.0.0.1"
    return f"http://{host}:{port}/healthz"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    url = args[0] if args else url_from_env(os.environ if environ is None else environ)
    if url is None:
        print(
            "healthcheck: the ops endpoint is off (CHIPWATCH_OPS_LISTEN is empty)", file=sys.stderr
        )
        return 1
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the reasons in the body
        body, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    try:
        reasons = json.loads(body).get("reasons") or []
    except (ValueError, AttributeError):
        reasons = []
    if status == 200:
        print(f"healthcheck: {url}: ok")
        return 0
    print(
        f"healthcheck: {url}: {status} " + ("; ".join(map(str, reasons)) or "unhealthy"),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
