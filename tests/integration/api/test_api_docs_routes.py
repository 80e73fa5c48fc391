"""GET /api/docs and its files over the app's own functions: anonymous, the page under its strict
Content-Security-Policy, each file with its type, and any other name a 404 problem."""

from __future__ import annotations

from functions.api_docs import CONTENT_SECURITY_POLICY
from tests.support.api import ApiClient
from tests.support.problems import assert_problem


async def test_the_docs_page_is_anonymous_html_under_the_strict_policy(api: ApiClient) -> None:
    r = await api.call("GET", "/api/docs")
    assert r.status == 200, r
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert b'<div id="swagger-ui">' in r.body


async def test_the_docs_page_with_a_trailing_slash_redirects_to_the_one_its_files_resolve_from(
    api: ApiClient,
) -> None:
    r = await api.call("GET", "/api/docs/")
    assert (r.status, r.headers["location"]) == (308, "../docs")


async def test_each_docs_file_is_served_with_its_type(api: ApiClient) -> None:
    expected = {
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "chorus-docs.js": "text/javascript; charset=utf-8",
        "swagger-ui.css": "text/css; charset=utf-8",
        "favicon-32x32.png": "image/png",
    }
    for name, content_type in expected.items():
        r = await api.call("GET", f"/api/docs/assets/{name}")
        assert r.status == 200, (name, r)
        assert r.headers["content-type"] == content_type, name
        assert r.body, name


async def test_a_docs_file_that_does_not_exist_is_a_404_problem(api: ApiClient) -> None:
    for name in ("swagger-initializer.js", "index.html", "..%2Fapi_docs.py"):
        assert_problem(await api.call("GET", f"/api/docs/assets/{name}"), 404, "not-found")
