import pytest

from devhost.host.routing import Route, RouteTable, RouteTemplate, RouteTemplateError

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def table(*routes: tuple[str, set[str]]) -> RouteTable[str]:
    return RouteTable(Route(RouteTemplate.parse(t), frozenset(m), t) for t, m in routes)


def test_literal_beats_parameter_whatever_the_order() -> None:
    routes = table(("users/{id}", {"GET"}), ("users/me", {"GET"}))
    assert routes.resolve("GET", "/users/me").target == "users/me"
    assert routes.resolve("GET", "/users/42").target == "users/{id}"


def test_constrained_parameter_beats_plain_parameter() -> None:
    routes = table(("items/{name}", {"GET"}), ("items/{id:int}", {"GET"}))
    assert routes.resolve("GET", "/items/7").target == "items/{id:int}"
    assert routes.resolve("GET", "/items/seven").target == "items/{name}"


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        ("guid", GUID, "not-a-guid"),
        ("int", "-12", "1.5"),
        ("int", "2147483647", "2147483648"),
        ("long", "2147483648", "x"),
        ("bool", "TRUE", "yes"),
        ("alpha", "abc", "ab1"),
        ("double", "1.5", "nan"),
        ("minlength(3)", "abc", "ab"),
        ("maxlength(2)", "ab", "abc"),
        ("range(1,5)", "5", "6"),
        ("regex(^a.c$)", "abc", "abd"),
    ],
)
def test_constraints(constraint: str, good: str, bad: str) -> None:
    routes = table((f"x/{{v:{constraint}}}", set()))
    assert routes.resolve("GET", f"/x/{good}").route_params == {"v": good}
    assert routes.resolve("GET", f"/x/{bad}").target is None


def test_route_values_arrive_as_strings() -> None:
    match = table(("posts/{postId:guid}/comments", {"GET"})).resolve("GET", f"/posts/{GUID}/comments")
    assert match.route_params == {"postId": GUID}


def test_optional_and_catch_all() -> None:
    routes = table(("pages/{page?}", set()), ("files/{*path}", set()))
    assert routes.resolve("GET", "/pages").route_params == {}
    assert routes.resolve("GET", "/pages/2").route_params == {"page": "2"}
    assert routes.resolve("GET", "/files/a/b/c.txt").route_params == {"path": "a/b/c.txt"}
    assert routes.resolve("GET", "/files").target == "files/{*path}"


def test_literals_match_case_insensitively() -> None:
    assert table(("Users/Me", set())).resolve("GET", "/users/ME").target == "Users/Me"


def test_method_mismatch_reports_allowed_methods() -> None:
    routes = table(("posts", {"POST"}), ("posts", {"GET"}))
    assert routes.resolve("PUT", "/posts").target is None
    assert routes.resolve("PUT", "/posts").allowed_methods == {"GET", "POST"}
    assert routes.resolve("get", "/posts").target == "posts"


def test_no_route_is_not_a_method_problem() -> None:
    match = table(("posts", {"GET"})).resolve("GET", "/nothing")
    assert match.target is None
    assert match.allowed_methods == frozenset()


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{x?}/b", "a/{x:nosuch}", "a/pre{x}"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(template)
