"""`cnnlab lab`: a local web app over cnnlab: the zoo, training with live curves, runs, inspection, the tutorials'
widgets and the experiments. FastAPI on uvicorn, Jinja2 pages, a little plain JavaScript, Plotly charts served
from the plotly package (no network needed) and Server-Sent Events for progress.

    from cnnlab.lab import create_app, serve
    serve("runs", host="127.0.0.1", port=8000)

The run directory is the interface: training and experiment jobs are separate `cnnlab` processes (see `jobs`),
and the server reads their files; it keeps no training state in memory. See docs/lab.md.
"""


def __getattr__(name: str):
    # Loaded on first use (PEP 562): `cnnlab lab` without the lab extra then fails with an install hint, not an
    # ImportError from fastapi.
    if name == "create_app":
        from cnnlab.lab.app import create_app

        return create_app
    if name == "serve":
        from cnnlab.lab.server import serve

        return serve
    raise AttributeError(f"module 'cnnlab.lab' has no attribute '{name}'")


__all__ = ["create_app", "serve"]
