"""Starting the lab: the token when it is reachable from other machines, the URL, and uvicorn."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import webbrowser
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.lab.security import is_loopback

TOKEN_ENV = "CNNLAB_LAB_TOKEN"
UNSPECIFIED = ("0.0.0.0", "::")


def lab_url(host: str, port: int, token: str | None) -> str:
    """The URL to open. 0.0.0.0 and :: are "every address", not one a browser can open: this machine's loopback
    stands in for them."""
    if host in UNSPECIFIED:
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def other_machines_url(host: str, port: int, token: str | None) -> str | None:
    """The URL for other machines, when the lab listens on every address: this machine's name."""
    return lab_url(socket.gethostname(), port, token) if host in UNSPECIFIED else None


def serve(
    runs: str | Path = "runs",
    host: str = "127.0.0.1",
    port: int = 8000,
    open_browser: bool = False,
    token: bool = True,
    models: list[str] | tuple[str, ...] | None = None,
) -> None:
    """Serve the lab until Ctrl-C, guarded by a token (CNNLAB_LAB_TOKEN, else a random one) carried by the printed
    URL and by `open_browser`. Even on loopback, as Jupyter does: on a shared machine every user reaches
    127.0.0.1. `token=False` (`--no-token`) opts out, on loopback only, for a single-user machine. `models`
    (`--models`): the Python files whose networks the lab offers, the only code of yours it runs."""
    try:
        import uvicorn

        from cnnlab.lab.app import create_app
    except ImportError as error:
        raise CnnlabError(
            f"cnnlab lab needs the lab extra ({error.name} is missing): pip install 'cnnlab[lab]'"
        ) from None
    if not token and not is_loopback(host):
        raise CnnlabError(f"--no-token is for loopback only: serving on {host}, every request must carry the token")
    secret = (os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)) if token else None
    app = create_app(runs, token=secret, host=host, models=models or ())
    url = lab_url(host, port, secret)
    print(f"cnnlab lab: serving {Path(runs).resolve()} at {url}", file=sys.stderr, flush=True)
    if (elsewhere := other_machines_url(host, port, secret)) is not None:
        print(f"cnnlab lab: from other machines: {elsewhere}", file=sys.stderr)
    if secret:
        print("cnnlab lab: the token in that URL guards the lab; share it only with whom you trust", file=sys.stderr)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
