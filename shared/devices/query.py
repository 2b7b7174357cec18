"""IoT Hub's query language for device twins and job records: parse, print, evaluate.

A broadcast selects its devices with a `queryCondition`, the WHERE part of an IoT Hub twin query
(`tags.site = 'berlin' AND properties.reported.fw < '2.0'`, or `*` for every device); the query
route takes a whole `SELECT * FROM devices [WHERE ...]` or `SELECT * FROM devices.jobs [WHERE
...]`. Both are parsed by one LALR grammar (the `lark` library), so a fault is reported with the
1-based character position where the parser stopped, as `InvalidQuery` (a 400 naming the field).
docs/device-queries.md describes the language for users; this docstring records why it behaves
as it does.

Semantics follow IoT Hub's (and those of the DocumentDB SQL it descends from):

- A condition holds only when it evaluates to Boolean `true`. A missing property is `undefined`;
  `null`, `undefined`, strings, numbers, objects and arrays are all "not true".
- Comparisons are defined only between primitives of the same type (number, string, Boolean,
  null); anything else (`1 = '1'`, `true = 1`, an object, a missing property) is `undefined`, and
  `NOT undefined` is `undefined`, so `NOT (x = 1)` does not select the devices without `x`.
  `=`, `!=` and `<>` work on all four types; `<`, `>`, `<=`, `>=` on numbers, strings (code-point
  order, so ISO timestamps compare as strings) and Booleans (false < true); null only equals null.
- `AND` and `OR` use three-valued logic: `false AND undefined` is false, `true OR undefined` is
  true; otherwise an operand that is not a Boolean makes the result `undefined`.
- `IN` and `NIN` take an array constant. The left side must be a primitive, and an element counts
  as equal only when it has the same type; for anything else both are `undefined`.
- Arithmetic (`+ - * / %`, unary minus) takes numbers only; anything else, a division by zero or
  a result out of range is `undefined`. `%` keeps the sign of the dividend (as C# does).
- `IS_DEFINED(path)` is true when the property exists, even when its value is `null`.
- Keywords (`AND`, `or`, `Not`, `is_defined`, `NULL`, ...) are case-insensitive and cannot
  begin a path (`[[select]].x`), though they may follow a dot (`tags.and`). `group` is reserved
  anywhere and must be escaped (`tags.[[group]]`); any segment may be escaped this way.

Property names: twins store keys case-sensitively (a twin may hold both `Mode` and `mode`), but
IoT Hub's query documentation calls property names case-insensitive, and its maintainers' recipe
for "all devices" is `IS_DEFINED(DeviceId)`. So a path segment resolves to the key spelled exactly
so when there is one, else to the only key that differs from it in case alone; when several keys
differ only in case and none matches exactly, the property is `undefined` (no guessing).

Limits: the text is at most 8,192 characters (IoT Hub's limit on a query), and nesting is at most
`MAX_DEPTH` levels (parentheses, NOT, arithmetic chains), so printing and evaluating, which recurse
once per level, stay far from Python's recursion limit. `a OR b OR c` is one `Or` with three
operands, not a nesting, so long generated conditions are not limited by depth.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lark import Lark, Token, Transformer_NonRecursive, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from shared.errors import InvalidQuery

MAX_QUERY_LENGTH = 8192
MAX_DEPTH = 100


class Undefined(enum.Enum):
    """The value of a missing property or of a meaningless operation (`1 = 'a'`)."""

    UNDEFINED = "undefined"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = Undefined.UNDEFINED

Scalar = None | bool | int | float | str
# An array constant is a tuple, so constants stay hashable and ASTs compare by value.
ConstantValue = Scalar | Undefined | tuple["ConstantValue", ...]
ComparisonOperator = Literal["=", "!=", "<", ">", "<=", ">="]
ArithmeticOperator = Literal["+", "-", "*", "/", "%"]


@dataclass(frozen=True, slots=True)
class Constant:
    value: ConstantValue


@dataclass(frozen=True, slots=True)
class Path:
    """`tags.location.region`: the property reached by following the segments from the root."""

    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IsDefined:
    path: Path


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expression


@dataclass(frozen=True, slots=True)
class Arithmetic:
    operator: ArithmeticOperator
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Comparison:
    """`<>` is kept as `!=`: they mean the same."""

    operator: ComparisonOperator
    left: Expression
    right: Expression


@dataclass(frozen=True, slots=True)
class Membership:
    """`operand IN [values]`, or `NIN` when `negated`."""

    negated: bool
    operand: Expression
    values: tuple[ConstantValue, ...]


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression


@dataclass(frozen=True, slots=True)
class And:
    """`a AND b AND c`: two operands or more; a parenthesised `And` operand stays one."""

    operands: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """`a OR b OR c`: two operands or more; a parenthesised `Or` operand stays one."""

    operands: tuple[Expression, ...]


Expression = (
    Constant | Path | IsDefined | Negate | Arithmetic | Comparison | Membership | Not | And | Or
)

ALL_DEVICES = Constant(True)
"""What `*` and a query without WHERE parse to: the condition every document meets."""

Collection = Literal["devices", "devices.jobs"]
_JOBS_SCOPE = ("devices", "jobs")


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed `SELECT * FROM <collection> [WHERE <condition>]`.

    In `devices.jobs`, paths name a job record's fields as `devices.jobs.<field>` (IoT Hub's
    spelling) or as the bare `<field>`; either way they are resolved in the record."""

    collection: Collection
    condition: Expression

    @property
    def scope(self) -> tuple[str, ...]:
        """The path prefix that names the queried document itself."""
        return _JOBS_SCOPE if self.collection == "devices.jobs" else ()

    def matches(self, document: Mapping[str, object]) -> bool:
        return matches(self.condition, document, self.scope)

    def candidate_keys(self, field: str) -> frozenset[str] | None:
        """See the function `candidate_keys`; `field` is the document's own name for the key."""
        return candidate_keys(self.condition, field, self.scope)


# --------------------------------------------------------------------------------------------
# Grammar. Precedence, loosest first: OR, AND, NOT, comparison/IN/NIN, + -, * / %, unary minus.
# Keywords are case-insensitive and share NAME's flags, so lark's lexer reads a word spelled like
# a keyword as that keyword everywhere (`a = 1 AND AND` fails at the second AND); after a dot the
# grammar takes a keyword back as a name, so `tags.and` is a path.

_GRAMMAR = r"""
condition: or_expr
query: _SELECT STAR _FROM path [_WHERE or_expr]

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: comparison
    | _NOT not_expr -> not_
?comparison: sum
    | sum COMPARE sum -> compare
    | sum _IN array -> in_
    | sum _NIN array -> nin
?sum: product
    | sum (PLUS | MINUS) product -> arith
?product: unary
    | product (STAR | SLASH | PERCENT) unary -> arith
?unary: atom
    | MINUS unary -> negate
?atom: constant
    | path
    | _IS_DEFINED "(" path ")" -> is_defined
    | "(" or_expr ")" -> parenthesised

path: (NAME | ESCAPED) ("." segment)*
?segment: NAME | ESCAPED | keyword_name
!keyword_name: _SELECT | _FROM | _WHERE | _OR | _AND | _NOT | _IN | _NIN | _IS_DEFINED
    | TRUE | FALSE | NULL | UNDEFINED

?constant: NUMBER -> number
    | STRING -> string
    | TRUE -> true
    | FALSE -> false
    | NULL -> null
    | UNDEFINED -> undefined
    | array
array: "[" "]"
    | "[" array_item ("," array_item)* "]"
?array_item: constant
    | MINUS NUMBER -> negative_number

_SELECT: "select"i
_FROM: "from"i
_WHERE: "where"i
_OR: "or"i
_AND: "and"i
_NOT: "not"i
_IN: "in"i
_NIN: "nin"i
_IS_DEFINED: "is_defined"i
TRUE: "true"i
FALSE: "false"i
NULL: "null"i
UNDEFINED: "undefined"i

NAME: /(?:[^\W\d]|\$)[\w$]*/i
ESCAPED: /\[\[[^\[\]]+\]\]/
NUMBER: /0[xX][0-9a-fA-F]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?/
STRING: /'(?:[^'\\]|\\[\s\S])*'/ | /"(?:[^"\\]|\\[\s\S])*"/
COMPARE: /<=|>=|<>|!=|=|<|>/
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"

%ignore /\s+/
"""

_PARSER = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer="basic",
    start=["condition", "query"],
    propagate_positions=True,
)

# Words the printer escapes in paths (a keyword cannot begin one; `group` is reserved).
_KEYWORDS = frozenset(
    {"select", "from", "where", "or", "and", "not", "in", "nin", "is_defined"}
    | {"true", "false", "null", "undefined", "group"}
)
_RESERVED = frozenset({"group"})  # IoT Hub's documented reserved word
_PLAIN_NAME = re.compile(r"(?:[^\W\d]|\$)[\w$]*")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\s\S])")
_SIMPLE_ESCAPES = {"'": "'", '"': '"', "\\": "\\"}


# --------------------------------------------------------------------------------------------
# Parsing


def parse_condition(text: str, field: str = "queryCondition") -> Expression:
    """A `queryCondition`: the WHERE part of a twin query, or `*` for every device."""
    _check_length(text, field)
    if text.strip() == "*":
        return ALL_DEVICES
    result = _build(_parse(text, "condition", field), field)
    assert not isinstance(result, Query)
    return result


def parse_query(text: str, field: str = "query") -> Query:
    """`SELECT * FROM devices [WHERE ...]` or `SELECT * FROM devices.jobs [WHERE ...]`."""
    _check_length(text, field)
    result = _build(_parse(text, "query", field), field)
    assert isinstance(result, Query)
    return result


def _check_length(text: str, field: str) -> None:
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidQuery(
            field,
            f"is {len(text)} characters long, more than the {MAX_QUERY_LENGTH} allowed",
            MAX_QUERY_LENGTH + 1,
        )
    if not text.strip():
        raise InvalidQuery(field, "is empty", 1)


def _parse(text: str, start: str, field: str) -> Tree[Token]:
    try:
        tree = _PARSER.parse(text, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(error, text, start, field) from None
    _check_depth(tree, field)
    return tree


def _syntax_error(error: UnexpectedInput, text: str, what: str, field: str) -> InvalidQuery:
    end = len(text) + 1
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            return InvalidQuery(field, f"unexpected end of {what}", end)
        return InvalidQuery(field, f"unexpected {_quote(str(token))}", _position(token))
    if isinstance(error, UnexpectedCharacters):
        offset = error.pos_in_stream or 0
        if text[offset] in "'\"":
            return InvalidQuery(field, "unterminated string", offset + 1)
        return InvalidQuery(field, f"unexpected character {_quote(text[offset])}", offset + 1)
    if isinstance(error, UnexpectedEOF):
        return InvalidQuery(field, f"unexpected end of {what}", end)
    raise error  # pragma: no cover - lark raises only the three above


def _check_depth(tree: Tree[Token], field: str) -> None:
    """Refuse deep nesting before anything recurses over it (walks without recursion)."""
    pending: list[tuple[Tree[Token], int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidQuery(
                field, f"is nested more than {MAX_DEPTH} levels deep", node.meta.start_pos + 1
            )
        pending.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _quote(text: str) -> str:
    """A piece of the input, shown in a message (cut short: a message is not an echo)."""
    return f"'{text}'" if len(text) <= 40 else f"'{text[:37]}...'"


def _position(token: Token) -> int:
    return (token.start_pos or 0) + 1


def _build(tree: Tree[Token], field: str) -> Expression | Query:
    try:
        return _Builder(field).transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, InvalidQuery):
            raise error.orig_exc from None
        raise


@dataclass(frozen=True, slots=True)
class _PathAt:
    """A path while it is built, with where it starts (for an error about it)."""

    path: Path
    position: int


class _Builder(Transformer_NonRecursive[Token, "Expression | Query"]):
    """Turns lark's parse tree into the AST; refuses what the grammar lets through but the
    language does not (bad escapes, reserved names, numbers out of range, unknown collections)."""

    def __init__(self, field: str) -> None:
        super().__init__()
        self._field = field

    def condition(self, children: list[object]) -> Expression:
        return _expression(children[0])

    def query(self, children: list[object]) -> Query:
        _star, source, where = children
        assert isinstance(source, _PathAt)
        spelled = ".".join(source.path.segments)
        collection: Collection
        if spelled.casefold() == "devices":
            collection = "devices"
        elif spelled.casefold() == "devices.jobs":
            collection = "devices.jobs"
        else:
            raise InvalidQuery(
                self._field,
                f"cannot query {_quote(spelled)} (devices and devices.jobs can be queried)",
                source.position,
            )
        return Query(collection, ALL_DEVICES if where is None else _expression(where))

    def or_expr(self, children: list[object]) -> Expression:
        return Or(tuple(_expression(child) for child in children))

    def and_expr(self, children: list[object]) -> Expression:
        return And(tuple(_expression(child) for child in children))

    def not_(self, children: list[object]) -> Expression:
        return Not(_expression(children[0]))

    def compare(self, children: list[object]) -> Expression:
        left, operator, right = children
        symbol = "!=" if operator == "<>" else str(operator)
        return Comparison(symbol, _expression(left), _expression(right))  # type: ignore[arg-type]

    def in_(self, children: list[object]) -> Expression:
        return Membership(False, _expression(children[0]), _array(children[1]))

    def nin(self, children: list[object]) -> Expression:
        return Membership(True, _expression(children[0]), _array(children[1]))

    def arith(self, children: list[object]) -> Expression:
        left, operator, right = children
        symbol = str(operator)
        return Arithmetic(symbol, _expression(left), _expression(right))  # type: ignore[arg-type]

    def negate(self, children: list[object]) -> Expression:
        operand = _expression(children[1])
        if isinstance(operand, Constant) and _is_number(operand.value):
            # `-1` is the constant -1 wherever it stands, as it is inside an array constant.
            return Constant(-operand.value)  # type: ignore[operator]
        return Negate(operand)

    def parenthesised(self, children: list[object]) -> Expression:
        return _expression(children[0])

    def is_defined(self, children: list[object]) -> Expression:
        path = children[0]
        assert isinstance(path, _PathAt)
        return IsDefined(path.path)

    def keyword_name(self, children: list[Token]) -> Token:
        return children[0]

    def path(self, children: list[Token]) -> _PathAt:
        return _PathAt(Path(tuple(map(self._segment, children))), _position(children[0]))

    def _segment(self, token: Token) -> str:
        if token.type == "ESCAPED":
            return str(token)[2:-2]
        if token.type == "NAME" and str(token).casefold() in _RESERVED:
            raise InvalidQuery(
                self._field,
                f"{_quote(str(token))} is a reserved word; write [[{token}]] for a property "
                "so named",
                _position(token),
            )
        return str(token)

    def number(self, children: list[Token]) -> Constant:
        return Constant(self._number(children[0]))

    def negative_number(self, children: list[Token]) -> Constant:
        return Constant(-self._number(children[1]))

    def _number(self, token: Token) -> int | float:
        text = str(token)
        if text[:2].lower() == "0x":
            return int(text, 16)
        if not any(mark in text for mark in ".eE"):
            return int(text)
        value = float(text)
        if not math.isfinite(value):
            raise InvalidQuery(self._field, f"number {text} is out of range", _position(token))
        return value

    def string(self, children: list[Token]) -> Constant:
        token = children[0]
        body_starts = _position(token) + 1

        def unescape(match: re.Match[str]) -> str:
            escape = match.group(1)
            if escape in _SIMPLE_ESCAPES:
                return _SIMPLE_ESCAPES[escape]
            if len(escape) == 5:
                return chr(int(escape[1:], 16))
            raise InvalidQuery(
                self._field,
                f"invalid escape {_quote(chr(92) + escape)} (allowed: \\' \\\" \\\\ \\uXXXX)",
                body_starts + match.start(),
            )

        return Constant(_join_surrogates(_ESCAPE.sub(unescape, str(token)[1:-1])))

    def true(self, _children: list[Token]) -> Constant:
        return Constant(True)

    def false(self, _children: list[Token]) -> Constant:
        return Constant(False)

    def null(self, _children: list[Token]) -> Constant:
        return Constant(None)

    def undefined(self, _children: list[Token]) -> Constant:
        return Constant(UNDEFINED)

    def array(self, children: list[object]) -> Constant:
        return Constant(tuple(_constant(child) for child in children))


def _expression(value: object) -> Expression:
    if isinstance(value, _PathAt):
        return value.path
    assert isinstance(
        value,
        Constant
        | Path
        | IsDefined
        | Negate
        | Arithmetic
        | Comparison
        | Membership
        | Not
        | And
        | Or,
    )
    return value


def _constant(value: object) -> ConstantValue:
    assert isinstance(value, Constant)
    return value.value


def _array(value: object) -> tuple[ConstantValue, ...]:
    assert isinstance(value, Constant) and isinstance(value.value, tuple)
    return value.value


def _join_surrogates(text: str) -> str:
    """`\\ud83d\\ude00` is one character, as in JSON; a lone surrogate is kept as it is."""
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text


# --------------------------------------------------------------------------------------------
# Printing: the text `parse_condition` reads back as the same expression.

_OR_LEVEL, _AND_LEVEL, _NOT_LEVEL, _COMPARE_LEVEL, _SUM_LEVEL, _PRODUCT_LEVEL, _UNARY_LEVEL = range(
    1, 8
)
_ATOM_LEVEL = 8


def to_text(expression: Expression) -> str:
    """The condition as text, with only the parentheses its structure needs."""
    return _print(expression, 0)


def _print(expression: Expression, context: int) -> str:
    """`context` is the loosest level the surrounding text accepts without parentheses."""
    level, text = _print_bare(expression)
    return f"({text})" if level < context else text


def _print_bare(expression: Expression) -> tuple[int, str]:
    match expression:
        case Constant(value):
            return _ATOM_LEVEL, _print_constant(value)
        case Path(segments):
            return _ATOM_LEVEL, _print_path(segments)
        case IsDefined(Path(segments)):
            return _ATOM_LEVEL, f"IS_DEFINED({_print_path(segments)})"
        case Negate(operand):
            return _UNARY_LEVEL, "- " + _print(operand, _UNARY_LEVEL)
        case Arithmetic(operator, left, right):
            level = _SUM_LEVEL if operator in "+-" else _PRODUCT_LEVEL
            return level, f"{_print(left, level)} {operator} {_print(right, level + 1)}"
        case Comparison(operator, left, right):
            return _COMPARE_LEVEL, (
                f"{_print(left, _SUM_LEVEL)} {operator} {_print(right, _SUM_LEVEL)}"
            )
        case Membership(negated, operand, values):
            keyword = "NIN" if negated else "IN"
            return _COMPARE_LEVEL, (
                f"{_print(operand, _SUM_LEVEL)} {keyword} {_print_constant(values)}"
            )
        case Not(operand):
            return _NOT_LEVEL, "NOT " + _print(operand, _NOT_LEVEL)
        case And(operands):
            return _AND_LEVEL, " AND ".join(_print(item, _NOT_LEVEL) for item in operands)
        case Or(operands):
            return _OR_LEVEL, " OR ".join(_print(item, _AND_LEVEL) for item in operands)
    raise AssertionError(expression)  # pragma: no cover


def _print_path(segments: tuple[str, ...]) -> str:
    return ".".join(_print_segment(segment) for segment in segments)


def _print_segment(segment: str) -> str:
    if _PLAIN_NAME.fullmatch(segment) and segment.casefold() not in _KEYWORDS:
        return segment
    if not segment or "[" in segment or "]" in segment:
        raise ValueError(f"a property named {segment!r} cannot be written in a query")
    return f"[[{segment}]]"


def _print_constant(value: ConstantValue) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    items = ", ".join(_print_constant(item) for item in value)
    # `[[1]]` would read as the escaped name `1`: a space keeps a nested array an array.
    return f"[ {items}]" if items.startswith("[") else f"[{items}]"


# --------------------------------------------------------------------------------------------
# Evaluation

Value = object  # a JSON value from the document, a constant, or UNDEFINED


def matches(
    condition: Expression, document: Mapping[str, object], scope: tuple[str, ...] = ()
) -> bool:
    """Whether the document meets the condition: only Boolean true counts."""
    return evaluate(condition, document, scope) is True


def evaluate(
    expression: Expression, document: Mapping[str, object], scope: tuple[str, ...] = ()
) -> Value:
    """The expression's value for one document (see the module docstring for the rules).
    `scope` is a path prefix that names the document itself (`devices.jobs` in job queries)."""
    match expression:
        case Constant(value):
            return value
        case Path(segments):
            return resolve(document, _relative(segments, scope))
        case IsDefined(Path(segments)):
            return resolve(document, _relative(segments, scope)) is not UNDEFINED
        case Negate(operand):
            number = evaluate(operand, document, scope)
            return -number if _is_number(number) else UNDEFINED  # type: ignore[operator]
        case Arithmetic(operator, left, right):
            return _arithmetic(
                operator, evaluate(left, document, scope), evaluate(right, document, scope)
            )
        case Comparison(operator, left, right):
            return _compare(
                operator, evaluate(left, document, scope), evaluate(right, document, scope)
            )
        case Membership(negated, operand, values):
            return _member(negated, evaluate(operand, document, scope), values)
        case Not(operand):
            truth = evaluate(operand, document, scope)
            return (not truth) if isinstance(truth, bool) else UNDEFINED
        case And(operands):
            return _three_valued(operands, document, scope, decisive=False)
        case Or(operands):
            return _three_valued(operands, document, scope, decisive=True)
    raise AssertionError(expression)  # pragma: no cover


def resolve(document: object, segments: tuple[str, ...]) -> Value:
    """The property at the path, or UNDEFINED; names match exactly, else case-insensitively
    when exactly one key matches so."""
    value = document
    for segment in segments:
        if type(value) is not dict and not isinstance(value, Mapping):  # dict: the fast case
            return UNDEFINED
        if segment in value:
            value = value[segment]
            continue
        folded = segment.casefold()
        found = [key for key in value if isinstance(key, str) and key.casefold() == folded]
        if len(found) != 1:
            return UNDEFINED
        value = value[found[0]]
    return value


def _relative(segments: tuple[str, ...], scope: tuple[str, ...]) -> tuple[str, ...]:
    prefix = segments[: len(scope)]
    if scope and len(segments) > len(scope) and _same_names(prefix, scope):
        return segments[len(scope) :]
    return segments


def _same_names(left: tuple[str, ...], right: tuple[str, ...]) -> bool:
    return len(left) == len(right) and all(
        a.casefold() == b.casefold() for a, b in zip(left, right, strict=True)
    )


def _kind(value: Value) -> str | None:
    """The primitive type of a value, None for objects, arrays and UNDEFINED."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _is_number(value: Value) -> bool:
    return _kind(value) == "number"


def _arithmetic(operator: ArithmeticOperator, left: Value, right: Value) -> Value:
    if not (_is_number(left) and _is_number(right)):
        return UNDEFINED
    a: float = left  # type: ignore[assignment]
    b: float = right  # type: ignore[assignment]
    try:
        if operator == "+":
            result = a + b
        elif operator == "-":
            result = a - b
        elif operator == "*":
            result = a * b
        elif b == 0:
            return UNDEFINED
        elif operator == "/":
            result = a / b
        elif isinstance(a, int) and isinstance(b, int):
            result = abs(a) % abs(b) * (-1 if a < 0 else 1)
        else:
            result = math.fmod(a, b)
    except OverflowError:
        return UNDEFINED
    if isinstance(result, float) and not math.isfinite(result):
        return UNDEFINED
    return result


def _compare(operator: ComparisonOperator, left: Value, right: Value) -> Value:
    kind = _kind(left)
    if kind is None or kind != _kind(right):
        return UNDEFINED
    if operator == "=":
        return left == right
    if operator == "!=":
        return left != right
    if kind == "null":
        return UNDEFINED
    a: float = left  # type: ignore[assignment]  # numbers, strings or Booleans: all ordered
    b: float = right  # type: ignore[assignment]
    if operator == "<":
        return a < b
    if operator == ">":
        return a > b
    if operator == "<=":
        return a <= b
    return a >= b


def _member(negated: bool, value: Value, values: tuple[ConstantValue, ...]) -> Value:
    kind = _kind(value)
    if kind is None:
        return UNDEFINED
    found = any(_kind(item) == kind and item == value for item in values)
    return found != negated


def _three_valued(
    operands: tuple[Expression, ...],
    document: Mapping[str, object],
    scope: tuple[str, ...],
    decisive: bool,
) -> Value:
    """AND (decisive False) and OR (decisive True): the decisive value wins at once; all the
    other Boolean gives it; anything else makes the result UNDEFINED."""
    result: Value = not decisive
    for operand in operands:
        value = evaluate(operand, document, scope)
        if value is decisive:
            return decisive
        if value is not result:
            result = UNDEFINED
    return result


# --------------------------------------------------------------------------------------------
# Key lookups: which documents can possibly match, without reading them.


def candidate_keys(
    condition: Expression, field: str, scope: tuple[str, ...] = ()
) -> frozenset[str] | None:
    """The values of the string property `field` (e.g. `deviceId`) that a matching document can
    have, when the condition pins them (`deviceId = 'a'`, `deviceId IN ['a', 'b']`, OR of such,
    AND with such); None when only a full scan can tell. The set may hold more than the matches:
    the caller still evaluates the whole condition on each document it reads."""
    match condition:
        case Comparison("=", Path(segments), Constant(value)) | Comparison(
            "=", Constant(value), Path(segments)
        ):
            if _is_field(segments, field, scope):
                return frozenset([value]) if isinstance(value, str) else frozenset()
        case Membership(False, Path(segments), values):
            if _is_field(segments, field, scope):
                return frozenset(value for value in values if isinstance(value, str))
        case Or(operands):
            keys: set[str] = set()
            for operand in operands:
                found = candidate_keys(operand, field, scope)
                if found is None:
                    return None
                keys |= found
            return frozenset(keys)
        case And(operands):
            pinned = [candidate_keys(operand, field, scope) for operand in operands]
            known = [found for found in pinned if found is not None]
            return frozenset.intersection(*known) if known else None
    return None


def _is_field(segments: tuple[str, ...], field: str, scope: tuple[str, ...]) -> bool:
    return _same_names(_relative(segments, scope), (field,))
