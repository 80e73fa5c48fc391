"""GET /api/docs: Swagger UI over this API's OpenAPI document (/api/openapi.json), to read the
contract and try each route against this very host (the Authorize button takes a bearer token).

Every file the page loads is served by the app: Swagger UI's from the pinned swagger-ui-py
package, the page and its start-up script from functions/api_docs_assets/. No CDN at run time.
The page's Content-Security-Policy lets it load scripts, styles and images only from this app and
call only this app; it runs no inline script (the start-up script is a file)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func

from functions.contract import page_route
from functions.http_support import ApiRequest
from shared_code.domain.errors import NotFound

bp = func.Blueprint()

_OWN_ASSETS = Path(__file__).with_name("api_docs_assets")
# The package ships Swagger UI's built files in swagger_ui/static; the package itself (a web
# framework adapter needing jinja2) is never imported: only its files are read.
_SWAGGER_UI_PACKAGE = "swagger_ui"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # swagger-ui.css draws its icons as data: SVGs.
        "img-src 'self' data:",
        # The document and every "Try it out" call go to this host only.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The files change only with a deployment (or a new pin of the package).
_ASSET_CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True)
class Asset:
    body: bytes
    mimetype: str


def swagger_ui_directory() -> Path:
    spec = importlib.util.find_spec(_SWAGGER_UI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; it is pinned in requirements.txt")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


# What /api/docs/assets/{name} serves; any other name answers a 404 problem.
_ASSET_SOURCES: dict[str, tuple[str, str]] = {
    "swagger-ui.css": ("swagger-ui", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui", "text/javascript"),
    "favicon-32x32.png": ("swagger-ui", "image/png"),
    "chorus-docs.js": ("own", "text/javascript"),
}


@cache
def load_asset(name: str) -> Asset:
    """The file named `name`, read once per worker."""
    if name not in _ASSET_SOURCES:
        raise NotFound(f"no docs asset is named {name!r}")
    source, mimetype = _ASSET_SOURCES[name]
    directory = swagger_ui_directory() if source == "swagger-ui" else _OWN_ASSETS
    return Asset((directory / name).read_bytes(), mimetype)


@page_route(bp, "docs")
async def api_docs_page(api: ApiRequest) -> func.HttpResponse:
    # The page names its files relative to /api/docs; /api/docs/ would resolve them one level down.
    if urlsplit(api.req.url).path.endswith("/"):
        return func.HttpResponse(status_code=308, headers={"Location": "../docs"})
    page = (_OWN_ASSETS / "index.html").read_bytes()
    return func.HttpResponse(page, mimetype="text/html", charset="utf-8", headers=dict(_PAGE_HEADERS))


@page_route(bp, "docs/assets/{name}")
async def api_docs_asset(api: ApiRequest) -> func.HttpResponse:
    asset = load_asset(api.req.route_params.get("name", ""))
    return func.HttpResponse(
        asset.body,
        mimetype=asset.mimetype,
        charset="utf-8",
        headers={"Cache-Control": _ASSET_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"},
    )
