"""The lab's ASGI middleware: headers that keep other pages from framing it, and request bodies capped while they
stream in.

Both are plain ASGI (not Starlette's BaseHTTPMiddleware) so that they wrap every response, static files and
refusals included, and see the body chunk by chunk, whatever its framing (Content-Length or chunked).
"""

from __future__ import annotations

import json

# `frame-ancestors 'none'` and X-Frame-Options stop clickjacking (a foreign page framing /train and clicking
# Start). Scripts come only from the lab itself; styles may be inline because Plotly injects its own <style>.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # a URL may carry the token
    (b"cross-origin-resource-policy", b"same-origin"),  # no foreign page may embed the lab's images or data
)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + list(SECURITY_HEADERS)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    """Raised from inside `receive` once a body passes its cap; BodyLimit turns it into a 413."""


class BodyLimit:
    """Refuses a request body over its path's cap with 413: at once when Content-Length says so, else as soon as
    the bytes received pass the cap, before the rest is read (so a chunked upload cannot fill the disk first).

    `limits` maps a path to its cap in bytes; every other path gets `default`."""

    def __init__(self, app, default: int, limits: dict[str, int]) -> None:
        self.app, self.default, self.limits = app, default, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.default)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _refuse(send, _too_large(int(declared) if declared.isdigit() else None, limit))
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, _too_large(None, limit))


def _too_large(size: int | None, limit: int) -> str:
    what = f"the request body is {size:,} bytes" if size is not None else "the request body is too large"
    return f"{what}; the limit here is {limit:,} bytes"


async def _refuse(send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    # Connection: close, since the rest of the body was not read and cannot start the next request.
    await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
