"""A WebSub hub on loopback that follows the W3C Recommendation where a subscriber can tell:

* ``POST /`` with ``application/x-www-form-urlencoded`` ``hub.mode`` (subscribe | unsubscribe),
  ``hub.topic``, ``hub.callback``, optional ``hub.secret`` (under 200 bytes) and
  ``hub.lease_seconds``: a request missing a parameter, or with a bad one, is 400 with a plain
  text reason; a good one is 202 Accepted, and then (in the background, as the spec has it)
  the hub verifies intent: ``GET callback?hub.mode=…&hub.topic=…&hub.challenge=…`` (with
  ``hub.lease_seconds`` for a subscribe), keeping the callback's own query. Only a 2xx whose
  body is the challenge changes the subscription (topic and callback identify it; a
  subscribe again renews it, with its new secret and lease); anything else leaves it as it was.
* Leases: the requested one clamped to ``[min_lease, max_lease]``, ``default_lease`` when none
  is asked; a subscription past its lease gets nothing.
* ``publish(topic)``: fetches the topic (as hubs do on a publisher's ping; ``hub.mode=publish``
  with ``hub.url`` over HTTP does the same) and POSTs the body to each live subscription's
  callback with the topic's ``Content-Type``, ``Link: <hub>; rel="hub", <topic>; rel="self"``
  and, for a subscription with a secret, ``X-Hub-Signature: sha256=…`` (``method`` picks sha1,
  sha256, sha384 or sha512).
* ``deny(topic, callback)``: tells the subscriber with ``hub.mode=denied``.

Everything the hub did is recorded (``requests``, ``verifications``, ``deliveries``), with the
hub's clock, so tests assert on what happened, not on timings.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from alerts.loopback import LoopbackServer

_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
            "sha512": hashlib.sha512}  # fmt: skip


@dataclass
class Subscription:
    topic: str
    callback: str
    secret: str | None
    lease_seconds: int
    expires_at: float  # the hub's time.time()

    def live(self, now: float) -> bool:
        return now < self.expires_at


def _http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, body, headers) of one request; an HTTP error status is an answer too."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)
    except OSError as exc:
        return None, str(exc).encode(), {}


class FakeHub(LoopbackServer):
    def __init__(
        self,
        *,
        default_lease: int = 864000,
        min_lease: int = 1,
        max_lease: int = 30 * 86400,
        method: str = "sha256",
    ):
        self.default_lease, self.min_lease, self.max_lease = default_lease, min_lease, max_lease
        self.method = method
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.requests: list[dict] = []  # every subscription request, as received
        self.verifications: list[dict] = []  # every verification GET and what came of it
        self.deliveries: list[dict] = []  # every content distribution POST
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._serve_requests(self._handle, "FakeHub", methods=("POST",))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # --- the hub's HTTP side --------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length)
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            self._respond(req, 400, b"Content-Type must be application/x-www-form-urlencoded",
                          "text/plain")  # fmt: skip
            return
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        with self._lock:
            self.requests.append({**form, "at": time.time()})
        status, reason = self._accept(form)
        self._respond(req, status, reason.encode(), "text/plain")

    def _accept(self, form: dict[str, str]) -> tuple[int, str]:
        mode = form.get("hub.mode", "")
        if mode == "publish":
            topic = form.get("hub.url", "")
            if not topic:
                return 400, "hub.url is required"
            self._background(self.publish, topic)
            return 204, ""
        if mode not in ("subscribe", "unsubscribe"):
            return 400, f"hub.mode must be subscribe or unsubscribe, got {mode!r}"
        for name in ("hub.topic", "hub.callback"):
            parts = urlsplit(form.get(name, ""))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return 400, f"{name} must be an http(s) URL"
        secret = form.get("hub.secret")
        if secret is not None and len(secret.encode()) >= 200:
            return 400, "hub.secret must be less than 200 bytes"
        lease = form.get("hub.lease_seconds", "")
        if lease and not lease.isdigit():
            return 400, "hub.lease_seconds must be a positive integer"
        asked = int(lease) if lease else self.default_lease
        granted = max(self.min_lease, min(self.max_lease, asked))
        self._background(self._verify, mode, form["hub.topic"], form["hub.callback"], secret,
                         granted)  # fmt: skip
        return 202, ""

    def _background(self, work, *args) -> None:
        thread = threading.Thread(target=work, args=args, daemon=True)
        with self._lock:
            self._workers.append(thread)
        thread.start()

    def _verify(self, mode: str, topic: str, callback: str, secret: str | None, lease: int) -> None:
        challenge = secrets.token_urlsafe(16)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        joiner = "&" if urlsplit(callback).query else "?"
        asked_at = time.time()
        status, body, headers = _http("GET", callback + joiner + urlencode(params))
        ok = (
            status is not None
            and 200 <= status < 300
            and body.decode("utf-8", "replace") == challenge
        )
        key = (topic, callback)
        with self._lock:
            before = self.subscriptions.get(key)
            record = {
                "mode": mode,
                "topic": topic,
                "callback": callback,
                "status": status,
                "verified": ok,
                "at": asked_at,
                "content_type": headers.get("Content-Type", ""),
                # a subscribe that renews a live subscription (before its lease ran out)
                "renewed_live": bool(
                    ok and mode == "subscribe" and before and before.live(asked_at)
                ),
                "same_secret": bool(before and before.secret == secret),
            }
            self.verifications.append(record)
            if ok and mode == "subscribe":
                self.subscriptions[key] = Subscription(topic, callback, secret, lease,
                                                       asked_at + lease)  # fmt: skip
            elif ok:
                self.subscriptions.pop(key, None)

    def deny(self, topic: str, callback: str, reason: str = "not allowed") -> int | None:
        """Deny a subscription (the spec allows it at any time): tells the subscriber."""
        with self._lock:
            self.subscriptions.pop((topic, callback), None)
        query = urlencode({"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason})
        status, _, _ = _http("GET", f"{callback}?{query}")
        return status

    # --- distribution -------------------------------------------------------------------------

    def live(self, topic: str | None = None) -> list[Subscription]:
        now = time.time()
        with self._lock:
            return [
                s for s in self.subscriptions.values()
                if s.live(now) and (topic is None or s.topic == topic)
            ]  # fmt: skip

    def publish(self, topic: str, *, method: str | None = None) -> list[int | None]:
        """Fetch the topic and deliver it to every live subscription; their answers' statuses.
        Blocking: call it from a thread when the subscriber runs in this thread's loop."""
        status, body, headers = _http("GET", topic)
        if status != 200:
            raise AssertionError(f"the hub could not fetch {topic}: {status}")
        ctype = headers.get("Content-Type", "application/octet-stream")
        return [self.deliver(sub, body, ctype, method=method) for sub in self.live(topic)]

    def deliver(
        self, sub: Subscription, body: bytes, content_type: str, *, method: str | None = None
    ) -> int | None:
        method = method or self.method
        headers = {
            "Content-Type": content_type,
            "Link": f'<{self.url}>; rel="hub", <{sub.topic}>; rel="self"',
        }
        if sub.secret is not None:
            digest = hmac.new(sub.secret.encode(), body, _DIGESTS[method]).hexdigest()
            headers["X-Hub-Signature"] = f"{method}={digest}"
        sent_at = time.time()
        status, _, _ = _http("POST", sub.callback, body, headers)
        with self._lock:
            self.deliveries.append(
                {"callback": sub.callback, "status": status, "at": sent_at, "bytes": len(body)}
            )
        return status

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait for the background verifications and publishes started so far."""
        with self._lock:
            workers = list(self._workers)
        for thread in workers:
            thread.join(timeout)
