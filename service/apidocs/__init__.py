"""`/docs`: the OpenAPI document in a browser (swagger-ui-dist from npm, served from the
project's node_modules, nothing from a CDN), with request signing explained above it.

The page holds nothing /openapi.json does not already publish, so it is on unless
SIDECAR_API_DOCS=false. Its Content-Security-Policy allows only this origin: the viewer
shares its origin with the rest of the service, so no script other than these files may run.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from service.errors import error_json

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SWAGGER_DIST = PROJECT_ROOT / "node_modules" / "swagger-ui-dist"
STATIC = Path(__file__).resolve().parent / "static"

# data: images are the icons Swagger UI's stylesheet embeds; nothing else is allowed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# The only files served: name -> (directory, media type). A fixed table, so no request path
# ever reaches the file system.
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (SWAGGER_DIST, _JS),
    "swagger-ui.css": (SWAGGER_DIST, _CSS),
    "favicon-32x32.png": (SWAGGER_DIST, "image/png"),
    "docs.js": (STATIC, _JS),
    "docs.css": (STATIC, _CSS),
}


def missing_assets() -> list[str]:
    """The asset files that are not there (swagger-ui-dist not installed: `npm ci`)."""
    return [name for name, (folder, _) in ASSETS.items() if not (folder / name).is_file()]


def _unavailable() -> Response:
    return error_json(
        503,
        "docs_unavailable",
        "the API viewer's files are not installed: run `npm ci` in the project directory",
        {"missing": missing_assets()},
        headers=HEADERS,
    )


async def page(request: Request) -> Response:
    if missing_assets():
        return _unavailable()
    return FileResponse(
        STATIC / "docs.html",
        media_type="text/html; charset=utf-8",
        headers={**HEADERS, "Cache-Control": "no-cache"},
    )


async def asset(request: Request) -> Response:
    found = ASSETS.get(request.path_params["name"])
    if found is None:
        return error_json(404, "not_found", "no such path", headers=HEADERS)
    folder, media_type = found
    path = folder / request.path_params["name"]
    if not path.is_file():
        return _unavailable()
    # Revalidated by ETag: a new pinned version must show without a stale cache.
    return FileResponse(
        path, media_type=media_type, headers={**HEADERS, "Cache-Control": "no-cache"}
    )


routes: list[BaseRoute] = [
    Route("/docs", page, methods=["GET"]),
    Route("/docs/assets/{name}", asset, methods=["GET"]),
]
