"""The real app indexes as the Python worker indexes it, and every setting its bindings
name is listed in local.settings.example.json."""

import re
from collections import defaultdict
from pathlib import Path

import pytest

from devhost.host.app_index import FunctionSpec, load_function_app
from devhost.settings_file import PROJECT_DIR, example_settings


@pytest.fixture(scope="module")
def specs() -> list[FunctionSpec]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in example_settings().items():
            env.setenv(name, value)
        # The example leaves keys to the local host; any PEM-shaped value passes validation.
        env.setenv("AUTH_PUBLIC_KEYS_PEM", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----")
        return load_function_app(PROJECT_DIR)


def test_the_app_indexes_with_unique_names(specs: list[FunctionSpec]) -> None:
    names = [spec.name for spec in specs]
    assert names
    assert len(names) == len(set(names))


def test_every_setting_a_binding_names_is_in_the_example(specs: list[FunctionSpec]) -> None:
    known = set(example_settings())
    missing = []
    for spec in specs:
        for binding in spec.bindings:
            for key, value in binding.items():
                if not isinstance(value, str):
                    continue
                for name in re.findall(r"%([^%]+)%", value):
                    if name not in known:
                        missing.append(f"{spec.name}.{key}: %{name}%")
                if key in ("connection", "connectionStringSetting") and value not in known:
                    missing.append(f"{spec.name}.{key}: {value}")
    assert missing == []


def test_change_feed_functions_on_one_container_use_distinct_lease_prefixes(
    specs: list[FunctionSpec],
) -> None:
    prefixes: dict[str, list[str]] = defaultdict(list)
    for spec in specs:
        if spec.trigger_type == "cosmosDBTrigger":
            trigger = spec.trigger
            prefixes[str(trigger["containerName"])].append(str(trigger.get("leaseContainerPrefix") or ""))
    for container, used in prefixes.items():
        assert len(used) == len(set(used)), f"{container}: lease prefixes {used} collide"


def test_http_functions_are_anonymous_at_the_host(specs: list[FunctionSpec]) -> None:
    """Bearer tokens are checked by the app; a host key would only get in the way of clients."""
    for spec in specs:
        if spec.trigger_type == "httpTrigger":
            assert spec.trigger.get("authLevel") == "ANONYMOUS", spec.name


def test_the_example_settings_file_is_the_one_func_start_reads() -> None:
    assert (PROJECT_DIR / "local.settings.example.json").is_file()
    assert Path(PROJECT_DIR / "host.json").is_file()


def test_the_openapi_document_lists_exactly_the_http_functions(specs: list[FunctionSpec]) -> None:
    """The spec is generated from the route contracts; this proves nothing is served undocumented
    and nothing documented is missing. The pages for people (the docs page and its files) are the
    one deliberate exception, and they are exactly the routes declared with `page_route`."""
    from functions.contract import PAGES
    from functions.openapi import build_openapi, openapi_path

    served = {
        (openapi_path(str(spec.trigger["route"])), method.lower())
        for spec in specs
        if spec.trigger_type == "httpTrigger"
        for method in spec.trigger["methods"]
    }
    documented = {
        (path, method) for path, operations in build_openapi()["paths"].items() for method in operations
    }
    pages = {(openapi_path(page.route), "get") for page in PAGES}
    assert pages == {("/api/docs", "get"), ("/api/docs/assets/{name}", "get")}
    assert documented.isdisjoint(pages)
    assert served == documented | pages


def test_the_openapi_document_is_3_1_with_bearer_auth() -> None:
    from functions.openapi import build_openapi

    spec = build_openapi()
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    health = spec["paths"]["/api/health"]["get"]
    assert health["security"] == []
    feed = spec["paths"]["/api/feed"]["get"]
    assert feed["security"] == [{"bearerAuth": []}]
    assert {p["name"] for p in feed["parameters"]} == {"limit", "cursor"}
    create = spec["paths"]["/api/posts"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreatePost"
    }
    assert "201" in create["responses"] and "422" in create["responses"]
