"""IoT Hub query conditions: the grammar (what parses to what, precedence, escapes), IoT Hub's
evaluation rules on a twin (only Boolean true selects; comparisons between primitives of one
type; missing is undefined), errors that name the position, the length and depth limits, key
lookups, and printing that parses back to the same tree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.devices.query import (
    ALL_DEVICES,
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    UNDEFINED,
    And,
    Arithmetic,
    Comparison,
    Constant,
    Expression,
    IsDefined,
    Membership,
    Negate,
    Not,
    Or,
    Path,
    candidate_keys,
    evaluate,
    matches,
    parse_condition,
    parse_query,
    to_text,
)
from shared.errors import InvalidQuery, InvalidRequest

TWIN = {
    "deviceId": "sensor-1",
    "status": "enabled",
    "version": 4,
    "tags": {
        "location": {"region": "US", "plant": "Redmond43"},
        "group": "blue",
        "floor": 3,
        "weight": 2.5,
        "active": True,
        "owner": None,
        "zones": ["a", "b"],
        "Mode": "upper",
        "mode": "lower",
        "Case": "only-upper",
    },
    "properties": {
        "desired": {"fw": "2.0", "$version": 7, "interval": 300},
        "reported": {
            "fw": "1.9",
            "lastBoot": "2024-03-01T10:00:00Z",
            "connectivity": {"type": "wifi"},
            "interval": 300,
        },
    },
}


def p(*segments: str) -> Path:
    return Path(segments)


def c(value: object) -> Constant:
    return Constant(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("deviceId = 'x'", Comparison("=", p("deviceId"), c("x"))),
        ('deviceId = "x"', Comparison("=", p("deviceId"), c("x"))),
        ("status != 'disabled'", Comparison("!=", p("status"), c("disabled"))),
        ("status <> 'disabled'", Comparison("!=", p("status"), c("disabled"))),
        ("a < 1", Comparison("<", p("a"), c(1))),
        ("a > 1.5", Comparison(">", p("a"), c(1.5))),
        ("a <= .5", Comparison("<=", p("a"), c(0.5))),
        ("a >= 1e3", Comparison(">=", p("a"), c(1000.0))),
        ("a = 0x1F", Comparison("=", p("a"), c(31))),
        ("a = 0XfF", Comparison("=", p("a"), c(255))),
        ("a = -2", Comparison("=", p("a"), c(-2))),
        ("a = null", Comparison("=", p("a"), c(None))),
        ("a = NULL", Comparison("=", p("a"), c(None))),
        ("a = undefined", Comparison("=", p("a"), c(UNDEFINED))),
        ("a = True", Comparison("=", p("a"), c(True))),
        ("a = false", Comparison("=", p("a"), c(False))),
        ("tags.location.region = 'US'", Comparison("=", p("tags", "location", "region"), c("US"))),
        (
            "properties.desired.$version = 7",
            Comparison("=", p("properties", "desired", "$version"), c(7)),
        ),
        ("$version > 1", Comparison(">", p("$version"), c(1))),
        ("tags.[[group]].name = 'a'", Comparison("=", p("tags", "group", "name"), c("a"))),
        ("tags.[[my-tag]] = 1", Comparison("=", p("tags", "my-tag"), c(1))),
        ("tags.and = 1", Comparison("=", p("tags", "and"), c(1))),
        ("tags.städte = 1", Comparison("=", p("tags", "städte"), c(1))),
        (
            "devices.jobs.jobId = 'j1'",
            Comparison("=", p("devices", "jobs", "jobId"), c("j1")),
        ),
        ("deviceId IN ['a', 'b']", Membership(False, p("deviceId"), ("a", "b"))),
        ("deviceId in ['a']", Membership(False, p("deviceId"), ("a",))),
        ("x NIN [1, -2, null, true, 'a']", Membership(True, p("x"), (1, -2, None, True, "a"))),
        ("x IN []", Membership(False, p("x"), ())),
        ("x IN [[1, 2], [3]]", Membership(False, p("x"), ((1, 2), (3,)))),
        ("IS_DEFINED(tags.owner)", IsDefined(p("tags", "owner"))),
        ("is_defined(DeviceId)", IsDefined(p("DeviceId"))),
        ("a + 1 = 2", Comparison("=", Arithmetic("+", p("a"), c(1)), c(2))),
        ("-a = 1", Comparison("=", Negate(p("a")), c(1))),
        ("- (1) = a", Comparison("=", c(-1), p("a"))),
        ("a = 1 AND b = 2", And((Comparison("=", p("a"), c(1)), Comparison("=", p("b"), c(2))))),
        ("a AND b AND c", And((p("a"), p("b"), p("c")))),
        ("a or b OR c", Or((p("a"), p("b"), p("c")))),
        ("(a OR b) OR c", Or((Or((p("a"), p("b"))), p("c")))),
        ("NOT a", Not(p("a"))),
        ("not not a", Not(Not(p("a")))),
        ("((a))", p("a")),
        ("  a\n=\t1  ", Comparison("=", p("a"), c(1))),
        ("*", ALL_DEVICES),
        (" * ", ALL_DEVICES),
        ("true", c(True)),
    ],
)
def test_a_condition_parses_to_its_tree(text: str, tree: Expression) -> None:
    assert repr(parse_condition(text)) == repr(tree)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        # NOT binds tighter than AND, AND tighter than OR.
        ("a OR b AND c", Or((p("a"), And((p("b"), p("c")))))),
        ("a AND b OR c", Or((And((p("a"), p("b"))), p("c")))),
        ("NOT a AND b", And((Not(p("a")), p("b")))),
        ("NOT a OR b", Or((Not(p("a")), p("b")))),
        ("(a OR b) AND c", And((Or((p("a"), p("b"))), p("c")))),
        ("NOT (a OR b)", Not(Or((p("a"), p("b"))))),
        # NOT is looser than a comparison, as in SQL.
        ("NOT a = 1", Not(Comparison("=", p("a"), c(1)))),
        # * / % before + -, both left-associative; unary minus tightest.
        (
            "a + b * c = 1",
            Comparison("=", Arithmetic("+", p("a"), Arithmetic("*", p("b"), p("c"))), c(1)),
        ),
        (
            "a - b - c = 1",
            Comparison("=", Arithmetic("-", Arithmetic("-", p("a"), p("b")), p("c")), c(1)),
        ),
        (
            "a / b % c = 1",
            Comparison("=", Arithmetic("%", Arithmetic("/", p("a"), p("b")), p("c")), c(1)),
        ),
        ("-a * b = 1", Comparison("=", Arithmetic("*", Negate(p("a")), p("b")), c(1))),
        (
            "(a + b) * c = 1",
            Comparison("=", Arithmetic("*", Arithmetic("+", p("a"), p("b")), p("c")), c(1)),
        ),
        ("a + 1 IN [2]", Membership(False, Arithmetic("+", p("a"), c(1)), (2,))),
    ],
)
def test_precedence(text: str, tree: Expression) -> None:
    assert repr(parse_condition(text)) == repr(tree)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'back\\slash'", "back\\slash"),
        (r"'\u00e9t\u00C9'", "étÉ"),
        (r"'\ud83d\ude00'", "\U0001f600"),
        ("'double \" inside single'", 'double " inside single'),
        ('"single \' inside double"', "single ' inside double"),
        ("''", ""),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert parse_condition(f"x = {literal}") == Comparison("=", p("x"), c(value))


@pytest.mark.parametrize(
    ("text", "collection", "condition"),
    [
        ("SELECT * FROM devices", "devices", ALL_DEVICES),
        (
            "select * from Devices where tags.a = 1",
            "devices",
            Comparison("=", p("tags", "a"), c(1)),
        ),
        ("SELECT * FROM devices.jobs", "devices.jobs", ALL_DEVICES),
        (
            "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'",
            "devices.jobs",
            Comparison("=", p("devices", "jobs", "jobId"), c("j")),
        ),
    ],
)
def test_a_whole_query_names_its_collection(
    text: str, collection: str, condition: Expression
) -> None:
    query = parse_query(text)
    assert query.collection == collection
    assert query.condition == condition


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deviceId = 'x' AND AND b = 1", "unexpected 'AND' at position 20"),
        ("tags.a = 'US' AND", "unexpected end of condition at position 18"),
        ("a = ", "unexpected end of condition at position 5"),
        ("= 1", "unexpected '=' at position 1"),
        ("a = 1 = 2", "unexpected '=' at position 7"),
        ("a == 1", "unexpected '=' at position 4"),
        ("(a = 1", "unexpected end of condition at position 7"),
        ("a = 1)", "unexpected ')' at position 6"),
        ("a IN 1", "unexpected '1' at position 6"),
        ("a IN [b]", "unexpected 'b' at position 7"),
        ("IS_DEFINED(1)", "unexpected '1' at position 12"),
        ("NOT", "unexpected end of condition at position 4"),
        ("a = 1 b = 2", "unexpected 'b' at position 7"),
        ("a # 1", "unexpected character '#' at position 3"),
        ("x = 'open", "unterminated string at position 5"),
        ('x = "open', "unterminated string at position 5"),
        (r"x = 'a\nb'", r"invalid escape '\n' (allowed: \' \" \\ \uXXXX) at position 7"),
        (r"x = 'a\u12'", "invalid escape '\\u' (allowed: \\' \\\" \\\\ \\uXXXX) at position 7"),
        ("x = 1e999", "number 1e999 is out of range at position 5"),
        (
            "tags.group = 'a'",
            "'group' is a reserved word; write [[group]] for a property so named at position 6",
        ),
        (
            "GROUP = 1",
            "'GROUP' is a reserved word; write [[GROUP]] for a property so named at position 1",
        ),
        ("tags.[[]] = 1", "unexpected '[' at position 6"),
        ("SELECT * FROM devices", "unexpected 'SELECT' at position 1"),
        ("", "is empty at position 1"),
        ("   ", "is empty at position 1"),
        ("a\n AND", "unexpected end of condition at position 7"),
    ],
)
def test_a_bad_condition_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_condition(text)
    assert str(caught.value) == f"queryCondition: {message}"
    assert caught.value.field == "queryCondition"
    assert isinstance(caught.value, InvalidRequest)  # so the API answers 400 naming the field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "SELECT * FROM devices.modules",
            "cannot query 'devices.modules' (devices and devices.jobs can be queried)"
            " at position 15",
        ),
        ("SELECT deviceId FROM devices", "unexpected 'deviceId' at position 8"),
        ("SELECT * FROM devices WHERE", "unexpected end of query at position 28"),
        ("SELECT * FROM devices WHERE a = 1 GROUP BY a", "unexpected 'GROUP' at position 35"),
        ("deviceId = 'x'", "unexpected 'deviceId' at position 1"),
    ],
)
def test_a_bad_query_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(InvalidQuery, match="^query: ") as caught:
        parse_query(text)
    assert str(caught.value) == f"query: {message}"


def test_the_field_named_in_errors_is_the_callers() -> None:
    with pytest.raises(InvalidQuery) as caught:
        parse_condition("a =", field="properties.queryCondition")
    assert str(caught.value).startswith("properties.queryCondition: ")
    assert caught.value.position == 4


def test_the_length_limit_is_8192_characters() -> None:
    longest = "deviceId IN [" + ", ".join(["'d'"] * 5000) + "]"
    longest = longest[: MAX_QUERY_LENGTH - 1].rsplit(",", 1)[0] + "]"
    padded = longest + " " * (MAX_QUERY_LENGTH - len(longest))
    assert len(padded) == MAX_QUERY_LENGTH
    assert isinstance(parse_condition(padded), Membership)
    with pytest.raises(InvalidQuery) as caught:
        parse_condition(padded + " ")
    assert str(caught.value) == (
        "queryCondition: is 8193 characters long, more than the 8192 allowed at position 8193"
    )
    with pytest.raises(InvalidQuery):
        parse_query("SELECT * FROM devices WHERE " + padded)


def test_long_flat_conditions_are_not_limited_by_depth() -> None:
    ids = [f"deviceId = 'd{n}'" for n in range(300)]
    condition = parse_condition(" OR ".join(ids))
    assert isinstance(condition, Or) and len(condition.operands) == 300
    assert matches(condition, {"deviceId": "d299"})


@pytest.mark.parametrize(
    "text",
    [
        "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1),
        "NOT " * (MAX_DEPTH + 1) + "a",
        "1" + " + 1" * (MAX_DEPTH + 1) + " = a",
        "a IN " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    ],
)
def test_deep_nesting_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(
        InvalidQuery, match=f"is nested more than {MAX_DEPTH} levels deep at position"
    ):
        parse_condition(text)


def test_nesting_up_to_the_limit_parses_evaluates_and_prints() -> None:
    text = "(" * (MAX_DEPTH - 5) + "a = 1" + ")" * (MAX_DEPTH - 5)
    condition = parse_condition(text)
    assert matches(condition, {"a": 1})
    nots = parse_condition("NOT " * (MAX_DEPTH - 5) + "a")
    assert parse_condition(to_text(nots)) == nots


# --------------------------------------------------------------------------------------------
# Evaluation against a twin


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("*", True),
        ("deviceId = 'sensor-1'", True),
        ("deviceId = 'sensor-2'", False),
        ("status = 'enabled' AND tags.location.region = 'US'", True),
        ("tags.location.region IN ['EU', 'US']", True),
        ("tags.location.region NIN ['EU', 'US']", False),
        ("tags.location.region NIN ['EU']", True),
        ("tags.floor IN ['3']", False),  # same value, other type
        ("tags.floor IN [3.0]", True),  # numbers are numbers
        ("tags.owner IN [null]", True),
        ("tags.missing IN ['a']", False),
        ("tags.missing NIN ['a']", False),  # undefined, not true
        ("tags.zones IN ['a']", False),  # an array is not a primitive
        ("tags.zones NIN ['a']", False),
        ("tags.floor = 3", True),
        ("tags.floor = '3'", False),  # type mismatch: undefined
        ("tags.floor != '3'", False),  # undefined too, so not true
        ("NOT (tags.floor = '3')", False),
        ("tags.active = true", True),
        ("tags.active = 1", False),  # a Boolean is not a number
        ("tags.active", True),  # a Boolean property is a condition by itself
        ("tags.location.region", False),  # a string is not true
        ("tags.location", False),  # nor an object
        ("tags.floor", False),  # nor a number
        ("tags.owner = null", True),
        ("tags.owner != null", False),
        ("tags.owner < null", False),  # null has no order
        ("tags.missing = null", False),  # missing is undefined, not null
        ("tags.location = tags.location", False),  # objects are not compared
        ("tags.zones = tags.zones", False),
        ("properties.desired.interval = properties.reported.interval", True),
        ("properties.desired.fw > properties.reported.fw", True),
        ("properties.reported.lastBoot > '2024-01-01'", True),  # ISO timestamps as strings
        ("properties.reported.lastBoot < '2024-03-01T09:59:59Z'", False),
        ("'abc' < 'abd'", True),
        ("'B' < 'a'", True),  # code-point order
        ("false < true", True),
        ("tags.weight >= 2.5 AND tags.weight <= 2.5", True),
        ("tags.weight > 2", True),
        ("properties.desired.$version = 7", True),
        ("properties.reported.connectivity.type = 'wifi'", True),
        ("properties.reported.connectivity.type.deeper = 'wifi'", False),
        ("tags.[[group]] = 'blue'", True),
        ("version = 4", True),
        # IS_DEFINED is true even for null, false for a missing property.
        ("IS_DEFINED(tags.owner)", True),
        ("IS_DEFINED(tags.location)", True),
        ("IS_DEFINED(tags.nothing)", False),
        ("NOT IS_DEFINED(tags.nothing)", True),
        ("IS_DEFINED(tags.location.nothing.deeper)", False),
        # Three-valued logic.
        ("tags.missing = 1 OR deviceId = 'sensor-1'", True),
        ("tags.missing = 1 AND deviceId = 'sensor-1'", False),
        ("NOT (tags.missing = 1)", False),
        ("NOT (tags.missing = 1) OR true", True),
        ("false AND tags.missing = 1", False),
        ("NOT (false AND tags.missing = 1)", True),
        ("NOT 'a'", False),
        ("NOT NOT true", True),
        # Arithmetic on numbers only.
        ("tags.floor + 1 = 4", True),
        ("tags.floor * 2 - 1 = 5", True),
        ("tags.floor / 2 = 1.5", True),
        ("tags.floor % 2 = 1", True),
        ("-7 % 3 = -1", True),  # the sign of the dividend, as C#
        ("7 % -3 = 1", True),
        ("7.5 % 2 = 1.5", True),
        ("-tags.floor = -3", True),
        ("- (tags.floor) < 0", True),
        ("tags.floor / 0 = 0", False),
        ("NOT (tags.floor / 0 = 0)", False),
        ("tags.floor % 0 = 0", False),
        ("deviceId + 1 = 1", False),
        ("'a' + 'b' = 'ab'", False),  # + is not concatenation
        ("-deviceId = 1", False),
        ("1e308 * 10 > 0", False),  # out of range is undefined
        ("0x10 = 16", True),
        # Names: exact first, then the only key equal but for case.
        ("DeviceId = 'sensor-1'", True),
        ("IS_DEFINED(DeviceId)", True),
        ("TAGS.LOCATION.REGION = 'US'", True),
        ("tags.Mode = 'upper' AND tags.mode = 'lower'", True),
        ("IS_DEFINED(tags.MODE)", False),  # two keys differ only in case: no guessing
        ("tags.case = 'only-upper'", True),
    ],
)
def test_evaluation_on_a_twin(condition: str, expected: bool) -> None:
    assert matches(parse_condition(condition), TWIN) is expected


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ("tags.missing", UNDEFINED),
        ("tags.floor = 'x'", UNDEFINED),
        ("tags.missing = 1 OR false", UNDEFINED),
        ("true AND 'a'", UNDEFINED),
        ("NOT tags.missing", UNDEFINED),
        ("tags.owner", None),
        ("tags.floor * 2", 6),
        ("7 / 2", 3.5),
        ("-7 % 3", -1),
        ("tags.zones", ["a", "b"]),
    ],
)
def test_the_value_of_an_expression(condition: str, value: object) -> None:
    assert evaluate(parse_condition(condition), TWIN) == value


def test_a_job_query_resolves_its_paths_in_the_job_record() -> None:
    record = {
        "deviceId": "d1",
        "jobId": "j1",
        "jobType": "scheduleUpdateTwin",
        "status": "completed",
        "createdDateTimeUtc": "2016-09-29T18:18:56.7787107Z",
    }
    query = parse_query(
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'"
        " AND devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed'"
        " AND devices.jobs.createdDateTimeUtc > '2016-09-01'"
    )
    assert query.matches(record)
    assert not query.matches({**record, "status": "failed"})
    assert parse_query("SELECT * FROM devices.jobs WHERE jobId = 'j1'").matches(record)
    assert parse_query("SELECT * FROM devices.jobs").matches(record)
    assert not parse_query("SELECT * FROM devices.jobs WHERE tags.a = 1").matches(record)


# --------------------------------------------------------------------------------------------
# Key lookups


@pytest.mark.parametrize(
    ("condition", "keys"),
    [
        ("deviceId = 'a'", {"a"}),
        ("'a' = deviceId", {"a"}),
        ("DeviceId = 'a'", {"a"}),
        ("deviceId IN ['a', 'b', 1]", {"a", "b"}),
        ("deviceId = 'a' OR deviceId IN ['b', 'c']", {"a", "b", "c"}),
        ("deviceId = 'a' AND tags.x = 1", {"a"}),
        ("deviceId IN ['a', 'b'] AND deviceId IN ['b', 'c']", {"b"}),
        ("(deviceId = 'a' OR deviceId = 'b') AND status = 'enabled'", {"a", "b"}),
        ("deviceId = 1", set()),
        ("*", None),
        ("tags.x = 1", None),
        ("deviceId = 'a' OR tags.x = 1", None),
        ("deviceId != 'a'", None),
        ("deviceId NIN ['a']", None),
        ("NOT deviceId = 'a'", None),
        ("tags.deviceId = 'a'", None),
        ("deviceId > 'a'", None),
    ],
)
def test_candidate_keys(condition: str, keys: set[str] | None) -> None:
    found = candidate_keys(parse_condition(condition), "deviceId")
    assert found == (None if keys is None else frozenset(keys))


def test_candidate_keys_are_never_fewer_than_the_matches() -> None:
    twins = [{"deviceId": name, "tags": {"x": n}} for n, name in enumerate("abcd")]
    for text in [
        "deviceId IN ['a', 'c'] AND tags.x > 0",
        "deviceId = 'b' OR deviceId = 'd'",
        "(deviceId = 'a' OR deviceId = 'b') AND (deviceId = 'b' OR deviceId = 'c')",
    ]:
        condition = parse_condition(text)
        keys = candidate_keys(condition, "deviceId")
        assert keys is not None
        assert {t["deviceId"] for t in twins if matches(condition, t)} <= keys


def test_a_job_query_looks_up_by_the_records_own_fields() -> None:
    query = parse_query("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j1'")
    assert query.candidate_keys("jobId") == frozenset({"j1"})
    assert query.candidate_keys("deviceId") is None


# --------------------------------------------------------------------------------------------
# Printing parses back to the same tree


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("a OR b AND c", "a OR b AND c"),
        ("(a OR b) AND c", "(a OR b) AND c"),
        ("(a OR b) OR c", "(a OR b) OR c"),
        ("NOT (a = 1)", "NOT a = 1"),
        ("a - (b - c) = 0x10", "a - (b - c) = 16"),
        ("a <> 'it\\'s'", "a != 'it\\'s'"),
        ("tags.[[group]] IN [[1], 2]", "tags.[[group]] IN [ [1], 2]"),
        ("tags.[[and]] = 1", "tags.[[and]] = 1"),
        ("is_defined(tags.x)", "IS_DEFINED(tags.x)"),
        ("-(a) = - 1", "- a = -1"),
    ],
)
def test_printing(text: str, printed: str) -> None:
    assert to_text(parse_condition(text)) == printed


_names = st.one_of(
    st.sampled_from(["deviceId", "status", "tags", "properties", "$version", "a", "B"]),
    st.sampled_from(["group", "and", "NOT", "true", "in", "my-tag", "x y", "1st", "ä"]),
    st.text(
        st.characters(exclude_characters="[]", exclude_categories=["Cs"]),
        min_size=1,
        max_size=6,
    ),
)
_paths = st.lists(_names, min_size=1, max_size=3).map(lambda parts: Path(tuple(parts)))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
)
_constant_values = st.recursive(
    st.one_of(_scalars, st.just(UNDEFINED)),
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=6,
)
_comparison_operators = st.sampled_from(["=", "!=", "<", ">", "<=", ">="])
_arithmetic_operators = st.sampled_from(["+", "-", "*", "/", "%"])


def _not_a_number_constant(expression: Expression) -> bool:
    """A minus before a number constant reads back as the negative constant."""
    return not (isinstance(expression, Constant) and type(expression.value) in (int, float))


def _extend(children: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
    return st.one_of(
        st.builds(Negate, children.filter(_not_a_number_constant)),
        st.builds(Arithmetic, _arithmetic_operators, children, children),
        st.builds(Comparison, _comparison_operators, children, children),
        st.builds(
            Membership, st.booleans(), children, st.lists(_constant_values, max_size=3).map(tuple)
        ),
        st.builds(Not, children),
        st.builds(And, st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(children, min_size=2, max_size=3).map(tuple)),
    )


_expressions: st.SearchStrategy[Expression] = st.recursive(
    st.one_of(st.builds(Constant, _constant_values), _paths, st.builds(IsDefined, _paths)),
    _extend,
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_expressions)
def test_a_printed_tree_parses_back_to_itself(expression: Expression) -> None:
    text = to_text(expression)
    assert repr(parse_condition(text)) == repr(expression), text


@settings(max_examples=200, deadline=None)
@given(_expressions)
def test_evaluation_never_raises_and_a_match_is_a_boolean_true(expression: Expression) -> None:
    value = evaluate(expression, TWIN)
    assert matches(expression, TWIN) is (value is True)
