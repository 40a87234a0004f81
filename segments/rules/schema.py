"""The rule tree of a segment (shared/API.md, "Rule tree") as typed, frozen nodes.

`parse_rules` validates a JSON tree once, so the compiler can trust what it gets. Every
problem is a RuleError naming the bad node by its path from the root ("all.2.value",
"any.0.not.time.amount"), which the API turns into the location of its 422.

Choices the contract leaves open, which the compiler and the descriptions follow too:
- a group holds at least one node: an empty "any" would silently match nobody;
- text values are never empty: `is_empty` is how one asks for people without a value;
- no text (value, name or key) holds a NUL character or a lone surrogate, which PostgreSQL
  text cannot store or compare;
- dates and datetimes compare on their date part, so `is`, `in` and `lt`..`gt` on them take
  "YYYY-MM-DD" values, like `before`..`after`;
- an event `where` filter compares the property as the type of the value it gives
  (a number, true/false, a "YYYY-MM-DD" date, or else text), since properties are untyped;
- a message condition's `message` is an object naming at most a campaign (an id) and a
  channel (email, sms, push); `{}` is any message. Its campaign is checked against the
  workspace with the catalogues (see check_catalogue): campaigns belong to a higher app,
  whose table is read through the app registry, never imported;
- limits: groups nest at most 20 deep, a tree holds at most 500 groups and conditions,
  its JSON is at most 64 KB, an `in` list at most 1000 values.
"""

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from django.apps import apps

from accounts.text import has_forbidden_character
from people.attributes import BUILTIN_ATTRIBUTES, KEY_PATTERN
from people.models import AttributeDefinition, AttributeType, EventType

MAX_DEPTH = 20
MAX_NODES = 500
MAX_JSON_BYTES = 64 * 1024
MAX_LIST_VALUES = 1000
MAX_COUNT = 1_000_000
# Deeper than this, raw JSON cannot be a valid tree of MAX_DEPTH groups (each group level is
# an object and a list; a condition adds a few more), and json.dumps would recurse on it.
_MAX_JSON_NESTING = 2 * MAX_DEPTH + 10
# A century in each unit: enough for any real rule, small enough that date arithmetic on
# today +/- amount can never leave the calendar.
MAX_AMOUNT = {
    "minutes": 100 * 366 * 24 * 60,
    "hours": 100 * 366 * 24,
    "days": 100 * 366,
    "weeks": 100 * 53,
    "months": 100 * 12,
}

# The operator table: which operators exist and which apply to each attribute type. What
# they are called, and which a builder offers, is next door in segments.rules.operators.
# Built-in attributes (Person's columns, company through its FK, created_at) and their
# types are people.attributes.BUILTIN_ATTRIBUTES.
EQUALITY_OPS = ("is", "is_not")
LIST_OPS = ("in", "not_in")
COMPARISON_OPS = ("lt", "lte", "gte", "gt")
EMPTINESS_OPS = ("is_empty", "is_not_empty")
TEXT_OPS = ("starts_with", "ends_with", "contains", "not_contains")
RELATIVE_DATE_OPS = (
    "will_be_in", "was", "will_be_within", "was_within", "will_be_more_than", "was_more_than",
)  # fmt: skip
ABSOLUTE_DATE_OPS = ("before", "until", "since", "after")
ATTRIBUTE_OPS = (
    EQUALITY_OPS + LIST_OPS + COMPARISON_OPS + EMPTINESS_OPS + TEXT_OPS
    + RELATIVE_DATE_OPS + ABSOLUTE_DATE_OPS
)  # fmt: skip
_DATE_OPS = EQUALITY_OPS + LIST_OPS + COMPARISON_OPS + EMPTINESS_OPS
_DATE_OPS += RELATIVE_DATE_OPS + ABSOLUTE_DATE_OPS
OPS_BY_TYPE = {
    AttributeType.STRING: EQUALITY_OPS + LIST_OPS + EMPTINESS_OPS + TEXT_OPS,
    AttributeType.NUMBER: EQUALITY_OPS + LIST_OPS + COMPARISON_OPS + EMPTINESS_OPS,
    AttributeType.BOOLEAN: EQUALITY_OPS + LIST_OPS + EMPTINESS_OPS,
    AttributeType.DATE: _DATE_OPS,
    AttributeType.DATETIME: _DATE_OPS,
    AttributeType.LIST: ("contains", "not_contains") + EMPTINESS_OPS,
}
RELATIVE_UNITS = ("days", "weeks", "months")
COUNT_OPS = ("eq", "lt", "lte", "gte", "gt")
TIME_OPS = ("any_time", "within_last", "before_last", "between_last")
WINDOW_UNITS = ("minutes", "hours", "days")
TAG_OPS = ("has", "has_not")
MEMBERSHIP_OPS = ("in", "not_in")
MESSAGE_OPS = ("received", "not_received", "opened", "clicked", "bounced")
MESSAGE_CHANNELS = ("email", "sms", "push")

GROUP_KEYS = ("all", "any", "not")
CONDITION_KEYS = ("attribute", "event", "tag", "audience", "segment", "message")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A position in a path ("all.2"): ASCII digits only, as the parser writes them. A key a
# client sent may be "²", which str.isdigit() accepts and int() refuses.
_POSITION = re.compile(r"[0-9]{1,9}")
UNSTORABLE_MESSAGE = "a text cannot contain a NUL character (or a lone surrogate)"


class RuleError(ValueError):
    """A rule tree that cannot be used; `path` names the bad node ("all.2.value")."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    @property
    def loc(self) -> tuple[str | int, ...]:
        """The path as an API error location: ("all", 2, "value")."""
        if not self.path:
            return ()
        return tuple(
            int(part) if _POSITION.fullmatch(part) else part for part in self.path.split(".")
        )


@dataclass(frozen=True)
class All:
    nodes: tuple["Node", ...]
    path: str = ""


@dataclass(frozen=True)
class Any:
    nodes: tuple["Node", ...]
    path: str = ""


@dataclass(frozen=True)
class Not:
    node: "Node"
    path: str = ""


@dataclass(frozen=True)
class RelativeDate:
    amount: int
    unit: str  # days | weeks | months


# What a condition compares against: a text, number or boolean; a date (date operators);
# a RelativeDate; a tuple of scalars (`in`, `not_in`); None (`is_empty`, `is_not_empty`).
Value = str | int | float | bool | date | RelativeDate | tuple | None


@dataclass(frozen=True)
class AttributeCondition:
    attribute: str
    op: str
    value: Value = None
    path: str = ""

    @property
    def builtin(self) -> bool:
        return self.attribute in BUILTIN_ATTRIBUTES


@dataclass(frozen=True)
class Count:
    op: str = "gte"
    value: int = 1


@dataclass(frozen=True)
class Window:
    """Which events count, relative to the evaluation time (amounts in `unit`)."""

    op: str = "any_time"
    unit: str | None = None
    amount: int | None = None  # within_last, before_last
    start: int | None = None  # between_last "from": the more recent end of the window
    end: int | None = None  # between_last "to": the older end


@dataclass(frozen=True)
class PropertyFilter:
    property: str
    op: str
    value: Value
    # The type the property is compared as, inferred from the value; None for emptiness.
    type: str | None
    path: str = ""


@dataclass(frozen=True)
class EventCondition:
    event: str
    count: Count = Count()
    time: Window = Window()
    where: tuple[PropertyFilter, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class TagCondition:
    tag: str
    op: str
    path: str = ""


@dataclass(frozen=True)
class AudienceCondition:
    audience: str
    op: str
    path: str = ""


@dataclass(frozen=True)
class SegmentCondition:
    segment: int
    op: str
    path: str = ""


@dataclass(frozen=True)
class MessageCondition:
    """What the send ledger holds for the person: a message received (sent or delivered),
    not received, opened, clicked or bounced, optionally of one campaign or channel,
    within a window as for events. Test sends never count."""

    op: str
    campaign: int | None = None
    channel: str | None = None
    time: Window = Window()
    path: str = ""


Group = All | Any | Not
Condition = (
    AttributeCondition | EventCondition | TagCondition | AudienceCondition | SegmentCondition
    | MessageCondition
)  # fmt: skip
Node = Group | Condition


def parse_rules(payload, *, workspace=None) -> Node:
    """The typed tree of a JSON rule tree, or RuleError naming the first bad node.

    With a workspace, the tree is also checked against its catalogues (see check_catalogue).
    """
    _check_size(payload)
    tree = _parse_node(payload, "")
    if workspace is not None:
        check_catalogue(tree, workspace=workspace)
    return tree


def check_catalogue(tree: Node, *, workspace, events: bool = True) -> dict[str, str]:
    """Check `tree` against the workspace's attribute and event catalogues.

    Returns the declared type of each custom attribute the tree uses. An unknown tag is fine
    (nobody has it); audiences and segments are checked by their own apps. `events` (when
    rules are written) also refuses an event the workspace has never seen and a campaign
    it does not have; a stored tree compiles without these checks (a campaign deleted since
    simply matches nobody).
    """
    nodes = list(iter_nodes(tree))
    custom = [node for node in nodes if isinstance(node, AttributeCondition) and not node.builtin]
    types = {}
    if custom:
        types = dict(
            AttributeDefinition.objects.for_workspace(workspace)
            .filter(key__in={node.attribute for node in custom})
            .values_list("key", "type")
        )
    for node in custom:
        if node.attribute not in types:
            raise RuleError(_join(node.path, "attribute"), f"unknown attribute “{node.attribute}”")
        check_value_type(
            node.op,
            node.value,
            types[node.attribute],
            path=node.path,
            subject=f"attribute “{node.attribute}”",
        )

    if not events:
        return types
    events = [node for node in nodes if isinstance(node, EventCondition)]
    known = set()
    if events:
        known = set(
            EventType.objects.for_workspace(workspace)
            .filter(name__in={node.event for node in events})
            .values_list("name", flat=True)
        )
    for node in events:
        if node.event not in known:
            raise RuleError(_join(node.path, "event"), f"unknown event “{node.event}”")
    _check_campaigns(nodes, workspace=workspace)
    return types


def _check_campaigns(nodes: list["Node"], *, workspace) -> None:
    wanted = [n for n in nodes if isinstance(n, MessageCondition) and n.campaign is not None]
    if not wanted:
        return
    # The send ledger and its campaigns belong to the campaigns app, above segments in the
    # app chain (pyproject.toml, import-linter): segments only reads them, by the app
    # registry, and imports nothing of campaigns.
    campaign_model = apps.get_model("campaigns", "Campaign")
    known = set(
        campaign_model.objects.for_workspace(workspace)
        .filter(pk__in={node.campaign for node in wanted})
        .values_list("pk", flat=True)
    )
    for node in wanted:
        if node.campaign not in known:
            raise RuleError(
                _join(node.path, "message.campaign"),
                f"no such campaign: there is no campaign {node.campaign} in this workspace",
            )


REALTIME_MESSAGES = (
    "real-time segments cannot use message conditions: sends, opens, clicks and bounces "
    "do not pass through the real-time outbox, so membership would not follow them; use "
    "a snapshot or a scheduled query segment"
)


def check_realtime(tree: "Node", *, types: dict[str, str]) -> None:
    """Refuse (RuleError at the node) what the real-time engine cannot keep current: list
    attributes and message conditions. `types`: the custom attribute types check_catalogue
    returned for the tree."""
    for node in iter_nodes(tree):
        if isinstance(node, AttributeCondition) and types.get(node.attribute) == AttributeType.LIST:
            raise RuleError(
                node.path, f"real-time segments cannot use list attributes (“{node.attribute}”)"
            )
        if isinstance(node, MessageCondition):
            raise RuleError(node.path, REALTIME_MESSAGES)


def check_value_type(op: str, value: Value, type_: str, *, path: str, subject: str) -> None:
    """Refuse an operator or value that does not fit an attribute of type `type_`."""
    if op not in OPS_BY_TYPE[type_]:
        raise RuleError(
            _join(path, "op"),
            f"“{op}” does not apply to {subject}, which holds {_TYPE_WORDS[type_]}",
        )
    value_path = _join(path, "value")
    if op in EQUALITY_OPS:
        _check_scalar_type(value, type_, value_path, subject)
    elif op in LIST_OPS:
        for index, item in enumerate(value):
            _check_scalar_type(item, type_, _join(value_path, index), subject)
    elif op in COMPARISON_OPS:
        wants_date = type_ in (AttributeType.DATE, AttributeType.DATETIME)
        if isinstance(value, date) != wants_date:
            expected = "a date (YYYY-MM-DD)" if wants_date else "a number"
            raise RuleError(value_path, f"expected {expected} for {subject}")


def iter_nodes(tree: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children, in the order they are written."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, All | Any):
            stack.extend(reversed(node.nodes))
        elif isinstance(node, Not):
            stack.append(node.node)


_TYPE_WORDS = {
    AttributeType.STRING: "text",
    AttributeType.NUMBER: "numbers",
    AttributeType.BOOLEAN: "true/false",
    AttributeType.DATE: "dates",
    AttributeType.DATETIME: "dates and times",
    AttributeType.LIST: "lists",
}


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_size(payload) -> None:
    # Both walks are iterative: a hostile tree must meet a RuleError, never Python's
    # recursion limit, and json.dumps only runs once the nesting is known to be shallow.
    nodes = 0
    stack = [(payload, "", 0)]  # a node, its path, the groups around it
    while stack:
        node, path, depth = stack.pop()
        nodes += 1
        if not isinstance(node, dict):
            continue
        children = []
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                children += [
                    (child, _join(_join(path, key), i)) for i, child in enumerate(node[key])
                ]
        if "not" in node:
            children.append((node["not"], _join(path, "not")))
        if children and depth + 1 > MAX_DEPTH:
            raise RuleError(path, f"groups nest more than {MAX_DEPTH} levels deep")
        if nodes + len(stack) + len(children) > MAX_NODES:
            raise RuleError("", f"a tree holds at most {MAX_NODES} groups and conditions")
        stack.extend((child, child_path, depth + 1) for child, child_path in children)

    values = [(payload, "", 1)]
    while values:
        value, path, nesting = values.pop()
        if nesting > _MAX_JSON_NESTING:
            raise RuleError(path, "values nest too deeply")
        if isinstance(value, str) and has_forbidden_character(value):
            raise RuleError(path, UNSTORABLE_MESSAGE)
        if isinstance(value, dict):
            if any(isinstance(key, str) and has_forbidden_character(key) for key in value):
                raise RuleError(path, UNSTORABLE_MESSAGE)
            values.extend((item, _join(path, key), nesting + 1) for key, item in value.items())
        elif isinstance(value, list | tuple):
            values.extend((item, _join(path, i), nesting + 1) for i, item in enumerate(value))

    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise RuleError("", "rules must be JSON (objects, lists, texts, numbers)") from None
    if size > MAX_JSON_BYTES:
        raise RuleError("", f"rules are larger than {MAX_JSON_BYTES // 1024} KB")


def _parse_node(raw, path: str) -> Node:
    if not isinstance(raw, dict):
        raise RuleError(path, _NODE_SHAPE)
    kinds = [key for key in (*GROUP_KEYS, *CONDITION_KEYS) if key in raw]
    if not kinds:
        raise RuleError(path, _NODE_SHAPE)
    if len(kinds) > 1:
        raise RuleError(path, f"a node is one group or one condition, not {' and '.join(kinds)}")
    return _PARSERS[kinds[0]](raw, path)


_NODE_SHAPE = (
    "expected a group (all, any, not) or a condition "
    "(attribute, event, tag, audience, segment, message)"
)


def _only_keys(raw: dict, path: str, allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise RuleError(_join(path, key), f"unknown key “{key}”")


def _require(raw: dict, key: str, path: str):
    if key not in raw:
        raise RuleError(_join(path, key), f"“{key}” is required")
    return raw[key]


def _choice(raw: dict, key: str, choices: tuple[str, ...], path: str) -> str:
    value = _require(raw, key, path)
    if not isinstance(value, str) or value not in choices:
        raise RuleError(
            _join(path, key), f"unknown {key} {value!r}; expected one of {', '.join(choices)}"
        )
    return value


def _name(raw: dict, key: str, path: str, *, max_length: int) -> str:
    value = _require(raw, key, path)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(_join(path, key), "expected a non-empty name")
    if len(value) > max_length:
        raise RuleError(_join(path, key), f"a name has at most {max_length} characters")
    return value


def _count_value(value, path: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleError(path, "expected a whole number, 0 or more")
    if value > maximum:
        raise RuleError(path, f"at most {maximum}")
    return value


def _parse_group(raw: dict, path: str) -> Node:
    kind = next(key for key in GROUP_KEYS if key in raw)
    _only_keys(raw, path, (kind,))
    group_path = _join(path, kind)
    if kind == "not":
        return Not(_parse_node(raw["not"], group_path), path)
    children = raw[kind]
    if not isinstance(children, list):
        raise RuleError(group_path, "expected a list of groups and conditions")
    if not children:
        raise RuleError(group_path, "a group needs at least one condition")
    nodes = tuple(_parse_node(child, _join(group_path, i)) for i, child in enumerate(children))
    return (All if kind == "all" else Any)(nodes, path)


def _parse_attribute(raw: dict, path: str) -> AttributeCondition:
    _only_keys(raw, path, ("attribute", "op", "value"))
    name = _name(raw, "attribute", path, max_length=100)
    if name not in BUILTIN_ATTRIBUTES and not KEY_PATTERN.match(name):
        raise RuleError(_join(path, "attribute"), f"“{name}” is not a valid attribute name")
    op = _choice(raw, "op", ATTRIBUTE_OPS, path)
    value = _parse_value(raw, op, path)
    if name in BUILTIN_ATTRIBUTES:
        check_value_type(op, value, BUILTIN_ATTRIBUTES[name], path=path, subject=f"“{name}”")
    return AttributeCondition(name, op, value, path)


def _parse_value(raw: dict, op: str, path: str) -> Value:
    """The value of an attribute operator, checked for the shape the operator needs."""
    value_path = _join(path, "value")
    if op in EMPTINESS_OPS:
        if raw.get("value") is not None:
            raise RuleError(value_path, f"“{op}” takes no value")
        return None
    value = _require(raw, "value", path)
    if op in EQUALITY_OPS:
        return _scalar(value, value_path)
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise RuleError(value_path, "expected a list of one or more values")
        if len(value) > MAX_LIST_VALUES:
            raise RuleError(value_path, f"a list holds at most {MAX_LIST_VALUES} values")
        return tuple(_scalar(item, _join(value_path, i)) for i, item in enumerate(value))
    if op in COMPARISON_OPS:
        if _is_number(value):
            return value
        if isinstance(value, str) and _parse_date(value):
            return _parse_date(value)
        raise RuleError(value_path, "expected a number or a date (YYYY-MM-DD)")
    if op in TEXT_OPS:
        if not isinstance(value, str) or value == "":
            raise RuleError(value_path, "expected a non-empty text")
        return value
    if op in RELATIVE_DATE_OPS:
        return _relative_date(value, value_path)
    parsed = _parse_date(value) if isinstance(value, str) else None
    if parsed is None:
        raise RuleError(value_path, "expected a date (YYYY-MM-DD)")
    return parsed


def _scalar(value, path: str):
    if isinstance(value, str):
        if value == "":
            raise RuleError(path, "an empty text matches nothing; use is_empty or is_not_empty")
        return value
    if isinstance(value, bool) or _is_number(value):
        return value
    raise RuleError(path, "expected a text, a number or true/false")


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)


def _parse_date(text: str) -> date | None:
    if not _DATE_TEXT.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _relative_date(value, path: str) -> RelativeDate:
    if not isinstance(value, dict):
        raise RuleError(path, 'expected {"amount": n, "unit": "days"|"weeks"|"months"}')
    _only_keys(value, path, ("amount", "unit"))
    unit = _choice(value, "unit", RELATIVE_UNITS, path)
    amount_path = _join(path, "amount")
    amount = _count_value(_require(value, "amount", path), amount_path, maximum=MAX_AMOUNT[unit])
    return RelativeDate(amount, unit)


def _check_scalar_type(value, type_: str, path: str, subject: str) -> None:
    if type_ == AttributeType.STRING:
        ok, expected = isinstance(value, str), "a text"
    elif type_ == AttributeType.NUMBER:
        ok, expected = _is_number(value), "a number"
    elif type_ == AttributeType.BOOLEAN:
        ok, expected = isinstance(value, bool), "true or false"
    else:  # dates and datetimes compare on their date part
        ok, expected = isinstance(value, str) and _parse_date(value) is not None, "YYYY-MM-DD"
    if not ok:
        raise RuleError(path, f"expected {expected} for {subject}")


def _parse_event(raw: dict, path: str) -> EventCondition:
    _only_keys(raw, path, ("event", "count", "time", "where"))
    name = _name(raw, "event", path, max_length=200)
    count = Count()
    if "count" in raw:
        count = _parse_count(raw["count"], _join(path, "count"))
    window = Window()
    if "time" in raw:
        window = _parse_window(raw["time"], _join(path, "time"))
    where = ()
    if "where" in raw:
        where = _parse_where(raw["where"], _join(path, "where"))
    return EventCondition(name, count, window, where, path)


def _parse_count(raw, path: str) -> Count:
    if not isinstance(raw, dict):
        raise RuleError(path, 'expected {"op": "gte", "value": n}')
    _only_keys(raw, path, ("op", "value"))
    op = _choice(raw, "op", COUNT_OPS, path)
    value = _count_value(_require(raw, "value", path), _join(path, "value"), maximum=MAX_COUNT)
    return Count(op, value)


def _parse_window(raw, path: str) -> Window:
    if not isinstance(raw, dict):
        raise RuleError(path, 'expected {"op": "any_time"|"within_last"|...}')
    op = _choice(raw, "op", TIME_OPS, path)
    if op == "any_time":
        _only_keys(raw, path, ("op",))
        return Window()
    amounts = ("amount",) if op != "between_last" else ("from", "to")
    _only_keys(raw, path, ("op", "unit", *amounts))
    unit = _choice(raw, "unit", WINDOW_UNITS, path)
    values = {
        key: _count_value(_require(raw, key, path), _join(path, key), maximum=MAX_AMOUNT[unit])
        for key in amounts
    }
    if op != "between_last":
        return Window(op, unit, amount=values["amount"])
    if values["from"] > values["to"]:
        raise RuleError(_join(path, "from"), "“from” must not be greater than “to”")
    return Window(op, unit, start=values["from"], end=values["to"])


def _parse_where(raw, path: str) -> tuple[PropertyFilter, ...]:
    if not isinstance(raw, list):
        raise RuleError(path, "expected a list of property filters")
    return tuple(_parse_property_filter(item, _join(path, i)) for i, item in enumerate(raw))


def _parse_property_filter(raw, path: str) -> PropertyFilter:
    if not isinstance(raw, dict):
        raise RuleError(path, 'expected {"property": ..., "op": ..., "value": ...}')
    _only_keys(raw, path, ("property", "op", "value"))
    name = _name(raw, "property", path, max_length=200)
    op = _choice(raw, "op", ATTRIBUTE_OPS, path)
    value = _parse_value(raw, op, path)
    type_ = _property_type(op, value, _join(path, "value"))
    if type_ is not None:
        check_value_type(op, value, type_, path=path, subject=f"property “{name}”")
    return PropertyFilter(name, op, value, type_, path)


def _property_type(op: str, value: Value, path: str) -> str | None:
    """The type a property is compared as: the type of the value the filter gives."""
    if op in EMPTINESS_OPS:
        return None
    if op in TEXT_OPS:
        return AttributeType.STRING
    if op in RELATIVE_DATE_OPS + ABSOLUTE_DATE_OPS or isinstance(value, date):
        return AttributeType.DATE
    items = value if op in LIST_OPS else (value,)
    types = {_scalar_type(item) for item in items}
    if types == {AttributeType.DATE, AttributeType.STRING}:
        return AttributeType.STRING  # some are not dates: compare them all as text
    if len(types) > 1:
        raise RuleError(path, "the values must all be of one type")
    return types.pop()


def _scalar_type(value) -> str:
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if _is_number(value):
        return AttributeType.NUMBER
    if _parse_date(value):
        return AttributeType.DATE
    return AttributeType.STRING


def _parse_tag(raw: dict, path: str) -> TagCondition:
    _only_keys(raw, path, ("tag", "op"))
    return TagCondition(
        _name(raw, "tag", path, max_length=100), _choice(raw, "op", TAG_OPS, path), path
    )


def _parse_audience(raw: dict, path: str) -> AudienceCondition:
    _only_keys(raw, path, ("audience", "op"))
    return AudienceCondition(
        _name(raw, "audience", path, max_length=200),
        _choice(raw, "op", MEMBERSHIP_OPS, path),
        path,
    )


def _parse_segment(raw: dict, path: str) -> SegmentCondition:
    _only_keys(raw, path, ("segment", "op"))
    segment = raw.get("segment")
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise RuleError(_join(path, "segment"), "expected a segment id (a positive whole number)")
    return SegmentCondition(segment, _choice(raw, "op", MEMBERSHIP_OPS, path), path)


def _parse_message(raw: dict, path: str) -> MessageCondition:
    _only_keys(raw, path, ("message", "op", "time"))
    message_path = _join(path, "message")
    message = raw["message"]
    if not isinstance(message, dict):
        raise RuleError(message_path, 'expected {"campaign": id, "channel": "email"|...} or {}')
    _only_keys(message, message_path, ("campaign", "channel"))
    campaign = message.get("campaign")
    if campaign is not None and (
        isinstance(campaign, bool) or not isinstance(campaign, int) or campaign < 1
    ):
        raise RuleError(
            _join(message_path, "campaign"), "expected a campaign id (a positive whole number)"
        )
    channel = None
    if message.get("channel") is not None:
        channel = _choice(message, "channel", MESSAGE_CHANNELS, message_path)
    op = _choice(raw, "op", MESSAGE_OPS, path)
    window = Window()
    if "time" in raw:
        window = _parse_window(raw["time"], _join(path, "time"))
    return MessageCondition(op, campaign, channel, window, path)


_PARSERS = {
    "all": _parse_group,
    "any": _parse_group,
    "not": _parse_group,
    "attribute": _parse_attribute,
    "event": _parse_event,
    "tag": _parse_tag,
    "audience": _parse_audience,
    "segment": _parse_segment,
    "message": _parse_message,
}
