"""The API docs page's own rules, without a browser: a strict Content-Security-Policy, no inline
script, and every file the page names served by the app from the pinned package or this repo."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from functions.api_docs import _OWN_ASSETS, CONTENT_SECURITY_POLICY, load_asset
from shared_code.domain.errors import NotFound


class _PageFiles(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []
        self.inline_scripts: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self._in_script = True
            assert values.get("src"), "a script without src is inline"
            self.files.append(str(values["src"]))
        elif tag == "link":
            self.files.append(str(values["href"]))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def _page() -> _PageFiles:
    parser = _PageFiles()
    parser.feed((_OWN_ASSETS / "index.html").read_text())
    return parser


def test_the_policy_allows_only_this_app_and_no_inline_or_eval() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert not re.search(r"unsafe-|\*|https?:", CONTENT_SECURITY_POLICY)


def test_the_page_has_no_inline_script_and_no_event_handler_attribute() -> None:
    page = _page()
    assert page.inline_scripts == []
    assert page.handlers == []


def test_every_file_the_page_names_is_served_from_the_apps_own_assets() -> None:
    files = _page().files
    assert files, "the page names no file"
    for url in files:
        assert url.startswith("docs/assets/"), url  # relative: this host, no CDN
        asset = load_asset(url.removeprefix("docs/assets/"))
        assert asset.body, url
    bundle = load_asset("swagger-ui-bundle.js")
    assert bundle.mimetype == "text/javascript"
    assert b"SwaggerUIBundle" in bundle.body
    assert load_asset("swagger-ui.css").mimetype == "text/css"


@pytest.mark.parametrize("name", ["index.html", "../api_docs.py", "swagger-initializer.js", ""])
def test_a_name_that_is_not_an_asset_is_not_found(name: str) -> None:
    with pytest.raises(NotFound):
        load_asset(name)
