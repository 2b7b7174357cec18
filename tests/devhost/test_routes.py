"""Route templates: parameters, catch-alls, constraints, prefixes, methods and precedence."""

from __future__ import annotations

import pytest

from devhost.routes import RouteTable


def table(*routes: tuple[str, list[str] | None]) -> RouteTable[str]:
    result: RouteTable[str] = RouteTable()
    for template, methods in routes:
        result.add(template, "api", template, methods, template)
    return result


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/{*route}", "/api/jobs/1", {"route": "jobs/1"}),
        ("{*route}", "/api", {}),
        ("{*route}", "/api/", {}),
        ("items/{id}", "/api/items/42", {"id": "42"}),
        ("items/{id}", "/API/Items/42/", {"id": "42"}),
        ("items/{id:int}", "/api/items/42", {"id": "42"}),
        ("items/{id?}", "/api/items", {}),
        ("files/{name}.{ext}", "/api/files/report.pdf", {"name": "report", "ext": "pdf"}),
        ("hello", "/api/hello", {}),
    ],
)
def test_a_template_matches_and_extracts_route_values(template, path, expected):
    assert table((template, None)).match("GET", path) == (template, expected)


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("items/{id}", "/api/items"),
        ("items/{id}", "/api/items/1/2"),
        ("items/{id:int}", "/api/items/abc"),
        ("hello", "/hello"),
        ("hello", "/api/hello/more"),
    ],
)
def test_a_template_does_not_match_other_paths(template, path):
    assert table((template, None)).match("GET", path) is None


def test_methods_are_checked():
    routes = table(("items/{id}", ["GET", "POST"]))

    assert routes.match("post", "/api/items/1") is not None
    assert routes.match("DELETE", "/api/items/1") is None


def named(*routes: tuple[str, str]) -> RouteTable[str]:
    result: RouteTable[str] = RouteTable()
    for name, template in routes:
        result.add(name, "api", template, None, name)
    return result


def test_the_first_function_by_name_wins_as_in_the_functions_host():
    """The host orders routes by function name (ignoring case), not by specificity."""
    routes = named(("b_item", "items/{id}"), ("C_new", "items/new"), ("a_all", "{*route}"))
    assert routes.match("GET", "/api/items/new") == ("a_all", {"route": "items/new"})

    routes = named(("z_all", "{*route}"), ("B_item", "items/{id}"), ("c_new", "items/new"))
    assert routes.match("GET", "/api/items/new") == ("B_item", {"id": "new"})
    assert routes.match("GET", "/api/items/7") == ("B_item", {"id": "7"})
    assert routes.match("GET", "/api/other") == ("z_all", {"route": "other"})


def test_a_route_whose_methods_do_not_match_lets_the_next_one_answer():
    routes: RouteTable[str] = RouteTable()
    routes.add("a_read", "api", "devices/{*path}", ["GET"], "a_read")
    routes.add("b_all", "api", "{*route}", None, "b_all")

    assert routes.match("GET", "/api/devices/d") == ("a_read", {"path": "d"})
    assert routes.match("PUT", "/api/devices/d") == ("b_all", {"route": "devices/d"})


def test_an_empty_prefix_serves_from_the_root():
    routes: RouteTable[str] = RouteTable()
    routes.add("all", "", "{*route}", None, "all")

    assert routes.match("GET", "/jobs") == ("all", {"route": "jobs"})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/jobs/a\nb", {"route": "jobs/a\nb"}),
        ("/api/jobs/a\r\n\x00b/c", {"route": "jobs/a\r\n\x00b/c"}),
        ("/api/jobs\n", {"route": "jobs\n"}),
    ],
)
def test_a_catch_all_takes_control_characters_as_aspnet_routing_does(path, expected):
    assert table(("{*route}", None)).match("GET", path) == ("{*route}", expected)


def test_a_trailing_newline_is_part_of_the_path_not_an_end_of_line():
    routes = table(("hello", None), ("items/{id}", None))

    assert routes.match("GET", "/api/hello\n") is None
    assert routes.match("GET", "/api/items/7\n") == ("items/{id}", {"id": "7\n"})
