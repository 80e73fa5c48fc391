"""GET /api/docs in a real browser (Debian's chromium, headless) against the local host: the page
shows every tag of the OpenAPI document, "Try it out" calls this host and shows the answer, the
Authorize button's bearer token reaches an authenticated route, and nothing is fetched from
anywhere else or refused by the page's Content-Security-Policy."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import aiohttp
import pytest

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.browser import Page, chromium_missing_reason, chromium_page

pytestmark = pytest.mark.skipif(
    (reason := chromium_missing_reason()) is not None, reason=reason or "chromium is installed"
)

# Every CSP refusal, as the page itself sees it; installed before any of the page's scripts run.
_RECORD_CSP_VIOLATIONS = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


async def _try_it(page: Page, operation: str, status: int, body_contains: str) -> None:
    """Expand an operation, press "Try it out" and "Execute", and see the live response."""
    block = f"#operations-{operation}"
    await page.click(f"{block} .opblock-summary-control", f"{operation} listed")
    await page.click(f"{block} .try-out__btn", f"{operation}'s Try it out button")
    await page.click(f"{block} .execute", f"{operation}'s Execute button")
    seen = await page.wait_for(
        f"(() => {{ const b = document.querySelector({json.dumps(block)});"
        " const s = b && b.querySelector('.live-responses-table .response .response-col_status');"
        " const r = b && b.querySelector('.live-responses-table .response-col_description pre');"
        " return s && r ? [s.textContent.trim(), r.textContent] : null; })()",
        f"{operation}'s response shown",
    )
    assert seen[0] == str(status), seen
    assert body_contains in seen[1], seen


async def test_the_docs_page_shows_every_tag_and_tries_routes_against_this_host(
    local_host: FunctionHost, api: ApiClient
) -> None:
    token = api.token("docs-reader")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            local_host.base_url + "/api/users",
            json={"username": "docs_reader", "displayName": "Reader"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert response.status == 201, await response.text()
        async with http.get(local_host.base_url + "/api/openapi.json") as response:
            document = await response.json()
    tags = {tag for path in document["paths"].values() for op in path.values() for tag in op["tags"]}
    assert len(tags) >= 5, tags

    async with chromium_page() as page:
        await page.send("Page.enable")
        await page.send("Network.enable")
        await page.send("Page.addScriptToEvaluateOnNewDocument", source=_RECORD_CSP_VIOLATIONS)
        await page.send("Page.navigate", url=local_host.base_url + "/api/docs")

        shown = await page.wait_for(
            "(() => { const t = [...document.querySelectorAll('.opblock-tag-section .opblock-tag')]"
            ".map(e => e.getAttribute('data-tag')); return t.length ? t : null; })()",
            "the tags rendered",
        )
        assert set(shown) == tags
        assert await page.evaluate("document.title") == "Chorus API"

        await _try_it(page, "operations-health", 200, '"status"')

        await page.click(".auth-wrapper .authorize", "the Authorize button")
        await page.type_into(".auth-container input[type=text]", token, "the bearer token field")
        await page.click(".auth-container .auth-btn-wrapper .authorize", "the dialog's Authorize button")
        await page.click(".auth-container .auth-btn-wrapper .btn-done", "the dialog's Close button")
        await _try_it(page, "identity-get_me", 200, '"docs_reader"')

        assert await page.evaluate("window.__cspViolations") == []
        fetched = {
            event["params"]["request"]["url"]
            for event in page.events
            if event.get("method") == "Network.requestWillBeSent"
        }
        origin = urlsplit(local_host.base_url).netloc
        elsewhere = {url for url in fetched if urlsplit(url).netloc != origin and not url.startswith("data:")}
        assert elsewhere == set(), "the page fetched from outside this host"
        assert local_host.base_url + "/api/docs/assets/swagger-ui-bundle.js" in fetched
