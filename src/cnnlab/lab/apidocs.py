"""The API's documentation: the OpenAPI JSON FastAPI generates (with the job bodies' schemas, lab/requests.py)
at /api/openapi.json, and /api/docs, a page the lab renders from that JSON itself.

Swagger UI and ReDoc load their scripts from a CDN: unreachable offline, and refused by the lab's CSP
(script-src 'self'). The page here is plain HTML, no script: each operation, its parameters, and each request
model's fields with their types and help.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from cnnlab.lab import requests

OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"
METHODS = ("get", "post", "put", "delete")


def install(app: FastAPI) -> None:
    """The job models' schemas in the OpenAPI document, and the /api/docs page."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(requests.schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    @app.get(DOCS_URL, include_in_schema=False, response_class=HTMLResponse)
    def docs():
        return render(app.openapi())


def _type(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " or ".join(_type(s) for s in schema[union] if s.get("type") != "null")
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return schema.get("type", "any")


def _operations(spec: dict) -> list[str]:
    rows = []
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            params = ", ".join(f"{p['name']} ({_type(p.get('schema', {}))})" for p in operation.get("parameters", []))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            parts = [params, f"body: {_type(body)}" if body else ""]
            cells = (f"{method.upper()} {path}", operation.get("summary", ""), "; ".join(p for p in parts if p))
            code, summary, given = (escape(cell) for cell in cells)
            rows.append(f"<tr><td><code>{code}</code></td><td>{summary}</td><td>{given}</td></tr>")
    return rows


def _model(name: str, schema: dict) -> str:
    required = set(schema.get("required", ()))
    rows = [
        f"<tr><td><code>{escape(field)}</code>{' (required)' if field in required else ''}</td>"
        f"<td>{escape(_type(spec))}</td><td>{escape(str(spec.get('default', '')) if 'default' in spec else '')}</td>"
        f"<td>{escape(spec.get('description', ''))}</td></tr>"
        for field, spec in schema.get("properties", {}).items()
    ]
    head = "<tr><th>field</th><th>type</th><th>default</th><th>help</th></tr>"
    doc = escape(schema.get("description", ""))
    return f'<h3 id="{escape(name)}">{escape(name)}</h3><p>{doc}</p><table>{head}{"".join(rows)}</table>'


def render(spec: dict) -> str:
    """/api/docs: the operations, then every schema's fields, from the OpenAPI document `spec`."""
    models = "".join(_model(name, s) for name, s in spec.get("components", {}).get("schemas", {}).items())
    title = escape(f"{spec['info']['title']} API {spec['info']['version']}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<link rel="stylesheet" href="/static/lab.css"></head><body><main><h1>{title}</h1>'
        f'<p>The machine-readable document: <a href="{OPENAPI_URL}">{OPENAPI_URL}</a> (OpenAPI '
        f"{escape(spec['openapi'])}).</p><h2>Operations</h2><table><tr><th>operation</th><th>what</th>"
        f"<th>parameters</th></tr>{''.join(_operations(spec))}</table><h2>Schemas</h2>{models}</main></body></html>"
    )
