"""Starting the lab: the token when it is reachable from other machines, the URL, and uvicorn."""

from __future__ import annotations

import os
import secrets
import sys
import webbrowser
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.lab.security import is_loopback

TOKEN_ENV = "CNNLAB_LAB_TOKEN"


def lab_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(runs: str | Path = "runs", host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False) -> None:
    """Serve the lab until Ctrl-C. Off loopback, a token (CNNLAB_LAB_TOKEN, else a random one) guards it."""
    try:
        import uvicorn

        from cnnlab.lab.app import create_app
    except ImportError as error:
        raise CnnlabError(
            f"cnnlab lab needs the lab extra ({error.name} is missing): pip install 'cnnlab[lab]'"
        ) from None
    token = None
    if not is_loopback(host):
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
    app = create_app(runs, token=token, host=host)
    url = lab_url(host, port, token)
    print(f"cnnlab lab: serving {Path(runs).resolve()} at {url}", file=sys.stderr, flush=True)
    if token:
        print("cnnlab lab: the token in that URL guards the lab; share it only with whom you trust", file=sys.stderr)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
