"""The lab's FastAPI application: the security checks, the pages and the JSON API.

    app = create_app("runs")                        # bound to loopback: Host must name loopback
    app = create_app("runs", token="s3cret", host="0.0.0.0")   # elsewhere: every request carries the token

Every error a request can cause is a 4xx with {"error": "<one line>"}; nothing returns a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from cnnlab._version import __version__
from cnnlab.errors import CnnlabError, OptionValueError
from cnnlab.lab import apidocs, lrfind, routes, sweeps, views
from cnnlab.lab.jobs import JobStore
from cnnlab.lab.middleware import SECURITY_HEADERS, BodyLimit, SecurityHeaders
from cnnlab.lab.networks import Networks
from cnnlab.lab.options import FieldError, label
from cnnlab.lab.predict import MAX_UPLOAD_BYTES
from cnnlab.lab.security import (
    TOKEN_COOKIE,
    LabRequestError,
    bearer_token,
    check_fetch_site,
    check_host,
    check_origin,
    check_raw_path,
    check_token,
    is_loopback,
    safe_path,
    same_server_location,
)
from cnnlab.measure.spec import LayerSpecError
from cnnlab.models.trust import UntrustedCode
from cnnlab.options.commands import command

HERE = Path(__file__).parent
PAGES = {
    "/": "zoo.html",
    "/design": "design.html",
    "/train": "train.html",
    "/runs": "runs.html",
    "/inspect": "inspect.html",
    "/widgets": "widgets.html",
    "/experiments": "experiments.html",
    "/sweeps": "sweeps.html",
}
NAV = (
    ("/", "Zoo"),
    ("/design", "Design"),
    ("/train", "Train"),
    ("/runs", "Runs"),
    ("/inspect", "Inspect"),
    ("/widgets", "Widgets"),
    ("/experiments", "Experiments"),
    ("/sweeps", "Sweeps"),
)
log = logging.getLogger("cnnlab.lab")
JSON_BODY_LIMIT = 1024 * 1024  # bytes: a job's options or a form's fields; only uploads need more
UPLOAD_LIMIT = MAX_UPLOAD_BYTES + 64 * 1024  # the image and the multipart framing around it


def error(message: str, status: int, **extra) -> JSONResponse:
    """The one shape of every refusal: {"error": one line, ...extra (e.g. "field": the form field at fault)}."""
    response = JSONResponse({"error": " ".join(str(message).split()), **extra}, status_code=status)
    # ServerErrorMiddleware sends a 500 from outside every other middleware: the headers go on here too.
    response.headers.update({k.decode(): v.decode() for k, v in SECURITY_HEADERS})
    return response


def create_app(
    runs_root: str | Path = "runs",
    token: str | None = None,
    host: str = "127.0.0.1",
    max_jobs: int = 1,
    models: list[str] | tuple[str, ...] = (),
) -> FastAPI:
    """The lab over `runs_root`. `host` is the address the server binds: loopback turns on the Host check; any
    other address requires `token`. `models`: the Python files whose networks it offers (`--models`); it runs
    no other code of the user's."""
    networks = Networks(models)  # a missing --models file stops the lab before it touches anything
    root = Path(runs_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if not is_loopback(host) and not token:
        raise CnnlabError(f"serving on {host} needs a token (every request must carry it)")
    # FastAPI's own docs pages load Swagger UI or ReDoc from a CDN, which the lab's CSP (script-src 'self') and an
    # offline machine refuse: the lab serves the OpenAPI JSON and renders /api/docs from it itself (apidocs.py).
    app = FastAPI(
        title="cnnlab lab",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=apidocs.OPENAPI_URL,
        lifespan=_lifespan,
    )
    app.state.root, app.state.token, app.state.loopback = root, token, is_loopback(host)
    app.state.jobs = JobStore(root, max_running=max_jobs)
    app.state.networks = networks
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    # Inspect's runtime menu, from the one declaration of `cnnlab predict --runtime` (default first).
    app.state.templates.env.globals["runtimes"] = command("predict").option("runtime").choices
    # Inside the guard (added before it): a body's excess is raised from `receive` in the route, and must reach
    # BodyLimit without crossing the guard's task group.
    app.add_middleware(BodyLimit, default=JSON_BODY_LIMIT, limits={"/api/predict": UPLOAD_LIMIT})
    _add_security(app)
    app.add_middleware(SecurityHeaders)  # added last: the outermost, so refusals above carry the headers too
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(routes.router)
    app.include_router(sweeps.router)
    app.include_router(lrfind.router)
    apidocs.install(app)
    _add_pages(app)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    app.state.jobs.advance()  # a queue left by a stopped server moves on
    # The zoo table counts every model's parameters (seconds): start now, so the first visit finds it ready.
    stop = threading.Event()
    warming = threading.Thread(target=views.warm_models_table, args=(stop,), daemon=True)
    warming.start()
    yield
    # Torch still running in a thread when the interpreter exits aborts the process ("terminate called without
    # an active exception"): stop between two models and wait for the one being measured.
    stop.set()
    warming.join(timeout=60)


def _add_security(app: FastAPI) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next):
        try:
            check_raw_path(request.scope.get("raw_path") or request.url.path.encode())
            if app.state.loopback:
                check_host(request.headers.get("host"))
            from_query = False
            if app.state.token:
                from_query = check_token(
                    app.state.token,
                    bearer_token(request.headers.get("authorization")),
                    request.cookies.get(TOKEN_COOKIE),
                    request.query_params.get("token"),
                )
            check_origin(request.headers.get("origin"), request.headers.get("host"))
            if request.url.path.startswith(("/api/", "/files/")):  # work and data: only for the lab's own pages
                check_fetch_site(request.headers.get("sec-fetch-site"))
        except LabRequestError as refused:
            return error(str(refused), refused.status)
        if from_query and request.method == "GET":  # the token once in the URL, then in a cookie; drop it from the URL
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            location = same_server_location(request.scope.get("raw_path") or request.url.path.encode(), kept)
            response = RedirectResponse(location, status_code=303)
            response.set_cookie(TOKEN_COOKIE, app.state.token, httponly=True, samesite="strict")
            return response
        return await call_next(request)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabRequestError)
    async def refused(request: Request, exc: LabRequestError):
        return error(str(exc), exc.status)

    @app.exception_handler(FieldError)
    async def refused_field(request: Request, exc: FieldError):
        return error(str(exc), exc.status, field=exc.field)  # the page shows it at that field

    @app.exception_handler(UntrustedCode)
    async def untrusted(request: Request, exc: UntrustedCode):  # refused, nothing run: the reason and the way
        return error(str(exc), 403, refused="untrusted-code")

    @app.exception_handler(CnnlabError)
    async def user_error(request: Request, exc: CnnlabError):
        return error(str(exc), 400)

    @app.exception_handler(LayerSpecError)
    async def bad_spec(request: Request, exc: LayerSpecError):  # the Design page marks the layer
        # The page shows the grammar beside the box: the line names the layer and its problem only.
        return error(f"bad layer '{exc.layer}': {exc.problem}", 400, field="spec", layer=exc.layer)

    @app.exception_handler(OptionValueError)
    async def bad_value(request: Request, exc: OptionValueError):  # the page's field, not the CLI's flag
        return error(f"{label(exc.option)} {exc.problem}", 400, field=exc.option)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.detail if isinstance(exc.detail, str) else "bad request", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(f"{where}: {first.get('msg', 'invalid request')}", 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error in %s", request.url.path)  # the traceback goes to the server's log only
        return error(f"internal error ({exc.__class__.__name__}); see the server's log", 500)


def _add_pages(app: FastAPI) -> None:
    def render(request: Request, template: str, **context):
        return app.state.templates.TemplateResponse(
            request, template, {"nav": NAV, "path": request.url.path, **context}
        )

    def page(template: str):
        def show(request: Request):
            return render(request, template)

        return show

    for url, template in PAGES.items():
        app.add_api_route(url, page(template), methods=["GET"], include_in_schema=False)

    @app.get("/runs/{name:path}", include_in_schema=False)
    def run_page(request: Request, name: str):
        return render(request, "run.html", run=name)

    @app.get("/files/{path:path}", include_in_schema=False)
    def files(path: str):
        target = safe_path(app.state.root, path)
        if not target.is_file():
            raise LabRequestError(f"no file '{path}' under the runs folder", 404)
        return FileResponse(target)

    @app.get("/plotly.min.js", include_in_schema=False)
    def plotly_js():
        import plotly

        return FileResponse(
            Path(plotly.__file__).parent / "package_data" / "plotly.min.js", media_type="text/javascript"
        )
