"""What makes the leaderboard safe to expose: headers, request limits, a per-client rate limit.

The Content-Security-Policy allows nothing but this origin's own scripts,
styles and images, and no inline script or style at all: even if some
untrusted text escaped its escaping, a browser would not run it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

from leaderboard.state import LEADERBOARD

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
MAX_QUERY_CHARS = 512
MAX_PATH_CHARS = 300

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RateLimiter:
    """A token bucket per client address; the least recently seen clients are forgotten first."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def allow(self, client: str, now: float | None = None) -> float:
        """0 if the request may proceed, else the seconds until it would."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def client_address(request: web.Request, trust_forwarded: bool) -> str:
    """Who is asking: the peer address, or behind one trusted reverse proxy the address it saw
    (the right-most X-Forwarded-For entry, the one that proxy appended)."""
    if trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last and len(last) <= 64:
            return last
    return request.remote or "?"


@web.middleware
async def limits_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if len(request.raw_path) > MAX_PATH_CHARS + MAX_QUERY_CHARS or len(request.query_string) > MAX_QUERY_CHARS:
        raise web.HTTPRequestURITooLong(text="request URI too long")
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], text="the leaderboard is read-only")
    lb = request.app[LEADERBOARD]
    wait = lb.limiter.allow(client_address(request, lb.settings.trust_forwarded))
    if wait > 0:
        raise web.HTTPTooManyRequests(text="too many requests; slow down",
                                      headers={"Retry-After": str(max(1, round(wait)))})
    return await handler(request)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors, static files and streams included."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
