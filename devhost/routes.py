"""Match request paths against HTTP trigger route templates (ASP.NET Core syntax).

Supported: literal segments, `{name}`, optional `{name?}`, catch-all `{*name}`, and the
constraints int, bool, alpha and guid (other constraints are accepted but not checked).
Matching is case-insensitive and tolerates a leading or trailing `/`, as the host does. Route
values are matched on the decoded path, as ASP.NET Core routing does: a parameter takes any
character but `/` and a catch-all takes every character, control characters (`%0A`) included,
so such a path reaches the function that owns the catch-all instead of a 404 of the host.

Precedence is the Functions host's, not ASP.NET Core's: the host registers one route per
function in the order of the function names (`FunctionMetadataNameComparer`, ordinal, ignoring
case) and the first route that matches the path and method wins, whatever its specificity
(azure-functions-host#9876, #3153; azure-webjobs-sdk-extensions#842 proposes a change that has
not landed). So a catch-all of a function named `a...` shadows `b`'s `items/new`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_PARAMETER = re.compile(r"\{(\*{1,2})?([A-Za-z_]\w*)((?::[^}?=]+)*)(\?|=[^}]*)?\}")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}",
}


@dataclass(frozen=True)
class Route(Generic[T]):
    function_name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    target: T

    @property
    def precedence(self) -> str:
        """Sort key: the function's name, as .NET's OrdinalIgnoreCase compares (upper-cased)."""
        return self.function_name.upper()


def compile_template(prefix: str, template: str) -> re.Pattern[str]:
    """A regex for the whole URL path `/<prefix>/<template>`, one named group per parameter."""
    segments = [s for s in f"{prefix}/{template}".split("/") if s]
    pattern = ""
    for segment in segments:
        whole = _PARAMETER.fullmatch(segment)
        if whole and (whole.group(1) or whole.group(4)):
            # An optional or catch-all parameter may be left out together with its slash.
            pattern += f"(?:/{_parameter_regex(whole)})?"
            continue
        pattern += "/"
        position = 0
        for match in _PARAMETER.finditer(segment):
            pattern += re.escape(segment[position : match.start()]) + _parameter_regex(match)
            position = match.end()
        pattern += re.escape(segment[position:])
    # \Z, not $: `$` would also match before a trailing newline (`/api/hello%0A`).
    return re.compile(f"^{pattern}/?\\Z", re.IGNORECASE | re.DOTALL)


def _parameter_regex(match: re.Match[str]) -> str:
    catch_all, name, constraints, _ = match.groups()
    if catch_all:
        return f"(?P<{name}>.*)"
    value = r"[^/]+"
    for constraint in (constraints or "").split(":"):
        value = _CONSTRAINTS.get(constraint.split("(")[0].lower(), value)
    return f"(?P<{name}>{value})"


class RouteTable(Generic[T]):
    def __init__(self) -> None:
        self._routes: list[Route[T]] = []

    def add(
        self,
        function_name: str,
        prefix: str,
        template: str,
        methods: list[str] | None,
        target: T,
    ) -> None:
        allowed = frozenset(m.upper() for m in methods) if methods else frozenset()
        pattern = compile_template(prefix, template)
        self._routes.append(Route(function_name, template, pattern, allowed, target))
        self._routes.sort(key=lambda r: r.precedence)

    def match(self, method: str, path: str) -> tuple[T, dict[str, str]] | None:
        """The first route's target and route values; None means 404 (also when the method is
        not allowed)."""
        for route in self._routes:
            found = route.pattern.match(path)
            if found and (not route.methods or method.upper() in route.methods):
                values = {k: v for k, v in found.groupdict().items() if v}
                return route.target, values
        return None
