"""What keeps the lab a local tool: the Host check, the token, and paths confined to the runs root.

- Bound to loopback, the lab serves only requests whose Host header names loopback, so a web page whose domain was
  rebound to 127.0.0.1 (DNS rebinding) gets nothing.
- Bound to any other address, every request needs the token: `Authorization: Bearer T`, or `?token=T` once, after
  which a cookie carries it (as Jupyter does).
- A request from another origin (a form posted by some other page, a script's fetch) is refused, and so is any
  request for the API or the run files that the browser marks as sent by another site (`Sec-Fetch-Site`), such
  as an <img> on a foreign page pointing at an expensive endpoint.
- The token's redirect goes only to a path on this server, re-encoded.
- Every path a request names resolves inside the runs root: no `..`, no absolute path, no encoded slash, and no
  symlink that leads out.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlencode, urlsplit

from cnnlab.errors import CnnlabError

TOKEN_COOKIE = "cnnlab_lab_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class LabRequestError(CnnlabError):
    """A request the lab refuses; `status` is its HTTP status (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class FieldError(LabRequestError):
    """A form value the lab refuses: `field` is the option's name (the form's input), the message one sentence in
    the form's words."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message, status)
        self.field = field


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host part of a Host header: "[::1]:8000" -> "::1", "localhost:8000" -> "localhost"."""
    try:
        name = urlsplit(f"//{header}").hostname
    except ValueError:  # a malformed port or bracket
        return ""
    return name or ""


def check_host(header: str | None) -> None:
    name = host_name(header or "")
    if name not in LOOPBACK_NAMES:
        raise LabRequestError(
            f"Host header '{header}' is not this machine's loopback (localhost, 127.0.0.1 or [::1]); "
            "the lab refuses it so that a page on another domain cannot reach it",
            403,
        )


def check_token(expected: str, bearer: str | None, cookie: str | None, query: str | None) -> bool:
    """True when the request carries the token (constant-time comparison); raises 401 without one, 403 for a
    wrong one. Returns whether it came in the query, so the caller can set the cookie."""
    for given, from_query in ((bearer, False), (cookie, False), (query, True)):
        if given:
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise LabRequestError("wrong token", 403)
            return from_query
    raise LabRequestError(
        "this lab needs its token: open the URL it printed (…?token=…) or send 'Authorization: Bearer TOKEN'", 401
    )


def check_origin(origin: str | None, host: str | None) -> None:
    """Refuse a request sent by a page of another origin. Browsers always send Origin on cross-origin POSTs and
    fetches; scripts and same-origin pages may omit it or send this host."""
    if origin is None:
        return
    if urlsplit(origin).netloc != (host or ""):
        raise LabRequestError(f"cross-origin request from {origin} refused", 403)


FOREIGN_FETCH_SITES = ("cross-site", "same-site")  # same-site: another port or subdomain is another program


def check_fetch_site(site: str | None) -> None:
    """Refuse a request the browser says another site's page made (Sec-Fetch-Site). An <img> or <script> tag
    sends no Origin header, so this is what keeps a foreign page from making the lab compute. Requests from
    the lab's pages say same-origin; a typed URL or a script (curl) says none or nothing."""
    if site and site.lower() in FOREIGN_FETCH_SITES:
        raise LabRequestError("the lab's API answers only its own pages (this request came from another site)", 403)


def same_server_location(raw_path: bytes, query: list[tuple[str, str]]) -> str:
    """A redirect target on this server: the request's path with exactly one leading slash (so "//evil.example/"
    cannot become a scheme-relative URL to another host), percent-encoded, and the query re-encoded."""
    path = "/" + raw_path.decode("latin-1").lstrip("/")
    path = quote(path, safe="/%:@!$&'()*+,;=-._~")  # keeps what is already encoded, encodes the rest
    return path + (f"?{urlencode(query)}" if query else "")


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def check_raw_path(raw_path: bytes) -> None:
    """Encoded slashes and backslashes would turn one path segment into several after decoding: refused."""
    lowered = raw_path.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in raw_path:
        raise LabRequestError("encoded slashes and backslashes are not allowed in paths", 400)


def safe_path(root: Path, relative: str) -> Path:
    """`root / relative`, refused (LabRequestError 400/404) unless it stays inside `root` once symlinks are
    resolved."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise LabRequestError(f"bad path '{relative}'", 400)
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts:
        raise LabRequestError(f"path '{relative}' leaves the runs folder", 400)
    base = root.resolve()
    target = (base / pure).resolve()
    if not target.is_relative_to(base):
        raise LabRequestError(f"path '{relative}' leads outside the runs folder (a symlink?)", 403)
    return target


def relative_name(root: Path, path: Path) -> str:
    """A path under `root` as the name the API uses for it (POSIX, relative)."""
    return Path(path).resolve().relative_to(root.resolve()).as_posix()
