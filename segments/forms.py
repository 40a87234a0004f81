"""The segment builder: a tree of groups and conditions, posted as flat form fields and
turned into the rule tree of shared/API.md ("Rule tree").

Every node has an id, its position from the root group "0" ("0.2" is the root's third
child, "0.2.1" that group's second), and posts its fields as n-<id>-<field>:

    n-0-type=group  n-0-match=all       n-0.0-type=attribute  n-0.0-attribute=city
    n-0.0-op=is     n-0.0-value=London  n-0.1-type=event      n-0.1-event=App Launch ...

A group matches all (AND), any (OR) or none (NOT any) of its children. The operators offered
for a type, their labels and value inputs come from segments.rules.operators, like the
People page's (people.forms), so both builders offer the same operators for a type.
Problems are kept on the node they belong to (`node.error`), which the page shows next
to that row; a RuleError from the rules package is mapped back to its row through the
path each node got in the tree.
"""

import re
from dataclasses import dataclass, field

from django import forms

from accounts import glossary
from config.forms import StyledFormMixin
from people.attributes import BUILTIN_ATTRIBUTES, BUILTIN_LABELS
from people.models import AttributeType
from segments.models import SegmentKind
from segments.rules import RuleError
from segments.rules import schema as rules_schema
from segments.rules.operators import (
    CHANNEL_LABELS,
    COUNT_LABELS,
    MEMBERSHIP_LABELS,
    MESSAGE_LABELS,
    PROPERTY_OPS,
    TAG_LABELS,
    TIME_LABELS,
    offered_ops,
    op_choices,
    op_label,
    value_kind,
)
from segments.rules.schema import (
    All,
    Any,
    AttributeCondition,
    AudienceCondition,
    EventCondition,
    MessageCondition,
    Not,
    RelativeDate,
    SegmentCondition,
    TagCondition,
    Window,
)

# Posted trees are bounded before anything else is done with them: Django refuses more
# than 1000 fields per request anyway, and a tree this size is far beyond any real rule.
MAX_NODES = 200
MAX_DEPTH = rules_schema.MAX_DEPTH  # groups below the root
UI_MAX_DEPTH = 4  # "add group" is offered down to this depth
MAX_WHERE = 10  # property filters per event condition

# ASCII digits only, everywhere a text becomes a number: str.isdigit() (and \d) also accept
# "²" or "٣", which int() refuses or reads as a digit nobody typed on purpose.
_NODE_ID = r"0(?:\.[0-9]{1,3})*"
_FIELD = re.compile(rf"^n-({_NODE_ID})-([a-z0-9_]{{1,20}})$")
_WHERE_FIELD = re.compile(r"^w([0-9]{1,2})_(prop|op|value|amount|unit)$")
_WHERE_INDEX = re.compile(r"[0-9]{1,2}")
_WHOLE = re.compile(r"[0-9]{1,9}")
_SEGMENT_ID = re.compile(r"[0-9]{1,12}")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

CONDITION_TYPES = [
    ("attribute", "Attribute"),
    ("event", "Event"),
    ("tag", "Tag"),
    ("audience", "Target audience"),
    ("segment", "Segment"),
    ("message", "Message"),
]
MATCHES = [
    ("all", "All of these (AND)"),
    ("any", "Any of these (OR)"),
    ("none", "None of these (NOT)"),
]
JOINERS = {"all": "AND", "any": "OR", "none": "OR"}
# The selects' (value, label) choices, from segments.rules.operators.
COUNT_OPS = list(COUNT_LABELS.items())
TIME_OPS = list(TIME_LABELS.items())
WINDOW_UNITS = list(rules_schema.WINDOW_UNITS)
RELATIVE_UNITS = list(rules_schema.RELATIVE_UNITS)
TAG_OPS = list(TAG_LABELS.items())
MEMBERSHIP_OPS = list(MEMBERSHIP_LABELS.items())
MESSAGE_OPS = list(MESSAGE_LABELS.items())
MESSAGE_CHANNELS = list(CHANNEL_LABELS.items())  # "" (any message) is offered beside them
# Event properties are untyped: a value is compared as what it looks like (a number,
# true/false, a YYYY-MM-DD date, else text); quotes keep a value text ("007").
PROPERTY_OP_CHOICES = op_choices(PROPERTY_OPS)
KIND_CHOICES = [
    (SegmentKind.SNAPSHOT, "Snapshot"),
    (SegmentKind.REALTIME, "Real-time"),
    (SegmentKind.QUERY, "Scheduled query"),
]
KIND_HELP = {
    kind: glossary.definition(kind)
    for kind in (SegmentKind.SNAPSHOT, SegmentKind.REALTIME, SegmentKind.QUERY)
}


class SegmentForm(forms.Form):
    """Name, kind and schedule of a segment; the rules come from the RuleBuilder. (The
    builder page lays these fields out itself.)"""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=KIND_CHOICES, initial=SegmentKind.SNAPSHOT)
    refresh_every_minutes = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=7 * 24 * 60,
        label="Refresh every (minutes)",
        help_text="Scheduled queries only.",
    )

    def __init__(self, *args, segment=None, **kwargs):
        self.segment = segment
        super().__init__(*args, **kwargs)
        if segment is not None:  # a segment's kind is chosen once, at creation
            del self.fields["kind"]
            if segment.kind != SegmentKind.QUERY:
                del self.fields["refresh_every_minutes"]

    def clean(self):
        data = super().clean()
        kind = self.segment.kind if self.segment else data.get("kind")
        if kind == SegmentKind.QUERY and not data.get("refresh_every_minutes"):
            self.add_error("refresh_every_minutes", "How often should the query run?")
        if kind != SegmentKind.QUERY:
            data["refresh_every_minutes"] = None
        return data


class ListSegmentForm(StyledFormMixin, forms.Form):
    """A segment without rules: a static list filled by hand, or everybody."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[
            (SegmentKind.STATIC, "Static list"),
            (SegmentKind.EVERYONE, "Everyone"),
        ],
        initial=SegmentKind.STATIC,
    )


# --- The catalogues the pickers offer ------------------------------------------------------


@dataclass
class Catalogue:
    """What a workspace's builder can pick from, read once per request."""

    types: dict[str, str]  # attribute -> type (BUILTIN_ATTRIBUTES + declared ones)
    attribute_labels: dict[str, str]
    events: list[str]
    tags: list[str]
    audiences: list[str]
    segments: list[tuple[int, str]]  # (id, label)
    campaigns: list[tuple[int, str]] = field(default_factory=list)  # (id, label)

    @property
    def attribute_choices(self) -> list[tuple[str, str]]:
        builtin = [(k, self.attribute_labels[k]) for k in BUILTIN_ATTRIBUTES]
        custom = sorted(
            ((k, self.attribute_labels[k]) for k in self.types if k not in BUILTIN_ATTRIBUTES),
            key=lambda item: item[1].lower(),
        )
        return builtin + custom


def make_catalogue(*, definitions, events, tags, audiences, segments, campaigns=()) -> Catalogue:
    """`campaigns`: (id, label) pairs for the message conditions' campaign picker."""
    types = dict(BUILTIN_ATTRIBUTES)
    labels = dict(BUILTIN_LABELS)
    for key, definition in definitions.items():
        types[key] = definition.type
        labels[key] = definition.label or key
    return Catalogue(
        types=types,
        attribute_labels=labels,
        events=list(events),
        tags=list(tags),
        audiences=list(audiences),
        segments=[(s.pk, f"{s.name} ({s.get_kind_display()})") for s in segments],
        campaigns=list(campaigns),
    )


# --- The posted tree ------------------------------------------------------------------------


class BuilderLimit(ValueError):
    """A posted tree too large or too deep to be a real one: refused before any work."""


@dataclass
class Node:
    id: str
    fields: dict[str, str] = field(default_factory=dict)
    children: list["Node"] = field(default_factory=list)
    error: str = ""
    # Left out of the live count while editing: what the row still needs.
    unfinished: str = ""
    # filled by RuleBuilder.prepare() for the template
    ui: dict = field(default_factory=dict)

    @property
    def is_group(self) -> bool:
        return self.id == "0" or bool(self.children) or self.fields.get("type") == "group"

    @property
    def type(self) -> str:
        if self.is_group:
            return "group"
        kind = self.fields.get("type", "")
        return kind if kind in dict(CONDITION_TYPES) else "attribute"

    @property
    def depth(self) -> int:
        return self.id.count(".")

    @property
    def dom_id(self) -> str:
        return self.id.replace(".", "-")

    @property
    def match(self) -> str:
        match = self.fields.get("match", "")
        return match if match in dict(MATCHES) else "all"

    @property
    def joiner(self) -> str:
        return JOINERS[self.match]

    @property
    def label(self) -> str:
        """The row's number as people read it: "2.1" is the first row of the second."""
        return ".".join(str(int(part) + 1) for part in self.id.split(".")[1:]) or "the rules"

    def get(self, name: str) -> str:
        return (self.fields.get(name) or "").strip()

    def walk(self):
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


def _sort_key(node_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in node_id.split("."))


def parse_posted(data) -> Node:
    """The tree of nodes in posted fields n-<id>-<field>. Raises BuilderLimit for a tree
    of more than MAX_NODES nodes or nested deeper than MAX_DEPTH groups."""
    fields: dict[str, dict[str, str]] = {}
    for key in data:
        match = _FIELD.match(key)
        if not match:
            continue
        node_id, name = match.groups()
        if node_id.count(".") > MAX_DEPTH + 1:
            raise BuilderLimit(f"Groups nest at most {MAX_DEPTH} levels deep.")
        if node_id not in fields and len(fields) >= MAX_NODES:
            raise BuilderLimit(f"A segment holds at most {MAX_NODES} groups and conditions.")
        value = data.get(key)
        fields.setdefault(node_id, {})[name] = value if isinstance(value, str) else ""
    # every ancestor of a posted node exists: one posted without its group becomes a group
    for node_id in list(fields):
        parts = node_id.split(".")
        for end in range(1, len(parts)):
            fields.setdefault(".".join(parts[:end]), {})
    if len(fields) > MAX_NODES:
        raise BuilderLimit(f"A segment holds at most {MAX_NODES} groups and conditions.")
    nodes = {node_id: Node(node_id, values) for node_id, values in fields.items()}
    root = nodes.get("0") or Node("0", {"type": "group"})
    for node_id in sorted(nodes, key=_sort_key):
        if node_id != "0":
            nodes[node_id.rpartition(".")[0]].children.append(nodes[node_id])
    return root


def _renumber(node: Node, node_id: str = "0") -> None:
    """Ids follow positions again after rows were added or removed (iterative)."""
    stack = [(node, node_id)]
    while stack:
        current, current_id = stack.pop()
        current.id = current_id
        if current.children:
            current.fields["type"] = "group"
        stack.extend((child, f"{current_id}.{i}") for i, child in enumerate(current.children))


def _where_rows(node: Node) -> list[dict[str, str]]:
    rows: dict[int, dict[str, str]] = {}
    for name, value in node.fields.items():
        match = _WHERE_FIELD.match(name)
        if match:
            rows.setdefault(int(match[1]), {})[match[2]] = (value or "").strip()
    return [rows[i] for i in sorted(rows)][:MAX_WHERE]


def _set_where_rows(node: Node, rows: list[dict[str, str]]) -> None:
    node.fields = {k: v for k, v in node.fields.items() if not _WHERE_FIELD.match(k)}
    for i, row in enumerate(rows):
        for name, value in row.items():
            node.fields[f"w{i}_{name}"] = value


def _empty_condition(node_id: str) -> Node:
    return Node(node_id, {"type": "attribute"})


class RuleBuilder:
    """A tree of groups and conditions: read from a POST or a stored rule tree, changed
    by the builder's buttons, turned into the JSON rule tree."""

    def __init__(self, root: Node, catalogue: Catalogue, *, error: str = ""):
        self.root = root
        self.catalogue = catalogue
        self.error = error  # about the whole tree (too big, no condition, ...)
        self._paths: list[tuple[str, Node]] = []
        self._strict = True

    # --- reading ----------------------------------------------------------------------

    @classmethod
    def from_post(cls, data, catalogue: Catalogue) -> "RuleBuilder":
        try:
            root = parse_posted(data)
        except BuilderLimit as e:
            root = Node("0", {"type": "group"}, [_empty_condition("0.0")])
            return cls(root, catalogue, error=str(e))
        if not root.children:
            root.children.append(_empty_condition("0.0"))
        _renumber(root)
        return cls(root, catalogue)

    @classmethod
    def empty(cls, catalogue: Catalogue) -> "RuleBuilder":
        return cls(Node("0", {"type": "group"}, [_empty_condition("0.0")]), catalogue)

    @classmethod
    def from_rules(cls, rules, catalogue: Catalogue) -> "RuleBuilder":
        """The builder showing a stored tree (one that parse_rules accepts)."""
        if not rules:
            return cls.empty(catalogue)
        root = _from_tree(rules_schema.parse_rules(rules))
        if root.fields.get("type") != "group":
            root = Node("0", {"type": "group", "match": "all"}, [root])
        _renumber(root)
        return cls(root, catalogue)

    def find(self, node_id: str) -> Node | None:
        return next((node for node in self.root.walk() if node.id == node_id), None)

    # --- the buttons ------------------------------------------------------------------

    def apply(self, action: str) -> None:
        """add:<group> adds a condition, group:<group> a group, remove:<node> removes a
        row or group, where:<event> adds a property filter, unwhere:<event>:<k> removes
        one. Anything else (or a stale id) changes nothing."""
        verb, _, rest = (action or "").partition(":")
        target_id, _, extra = rest.partition(":")
        node = self.find(target_id)
        if node is None:
            return
        count = sum(1 for _ in self.root.walk())
        if verb in ("add", "group") and node.is_group:
            if count + 2 > MAX_NODES:
                self.error = f"A segment holds at most {MAX_NODES} groups and conditions."
                return
            child_id = f"{node.id}.{len(node.children)}"
            if verb == "add":
                node.children.append(_empty_condition(child_id))
            elif node.depth + 1 <= min(UI_MAX_DEPTH, MAX_DEPTH):
                node.children.append(
                    Node(child_id, {"type": "group", "match": "all"}, [_empty_condition("x")])
                )
        elif verb == "remove" and node.id != "0":
            parent = self.find(node.id.rpartition(".")[0])
            parent.children.remove(node)
            if not self.root.children:
                self.root.children.append(_empty_condition("0.0"))
        elif verb == "where" and node.type == "event":
            rows = _where_rows(node)
            if len(rows) < MAX_WHERE:
                _set_where_rows(node, [*rows, {"prop": "", "op": "is"}])
        elif verb == "unwhere" and node.type == "event" and _WHERE_INDEX.fullmatch(extra):
            rows = _where_rows(node)
            if int(extra) < len(rows):
                del rows[int(extra)]
                _set_where_rows(node, rows)
        _renumber(self.root)

    # --- to the rule tree -------------------------------------------------------------

    @property
    def errors(self) -> list[Node]:
        return [node for node in self.root.walk() if node.error]

    @property
    def has_errors(self) -> bool:
        return bool(self.error or self.errors)

    @property
    def unfinished(self) -> list[Node]:
        """Rows started but not complete, which the live count leaves out (tree(strict=False))."""
        return [node for node in self.root.walk() if node.unfinished]

    def first_error(self) -> str:
        if self.error or not self.errors:
            return self.error
        node = self.errors[0]
        return node.error if node.id == "0" else f"Condition {node.label}: {node.error}"

    def tree(self, *, strict: bool = True) -> dict | None:
        """The JSON rule tree of the complete conditions (None when there is none). A row
        whose value does not fit gets an error and the tree is None. `strict` (saving)
        also refuses a row that is started but not finished; otherwise (the live count,
        while editing) such a row is left out."""
        for node in self.root.walk():
            node.error = node.unfinished = ""
        if self.error:
            return None
        self._strict = strict
        tree, paths = self._build(self.root)
        self._paths = paths
        if self.errors:
            return None
        return tree

    def attach(self, error: RuleError) -> None:
        """Show a RuleError next to the row its path names (or on the whole tree)."""
        best: Node | None = None
        best_length = -1
        target = error.path
        for path, node in self._paths:
            covers = path == target or path == "" or target.startswith(path + ".")
            if covers and len(path) >= best_length:
                best, best_length = node, len(path)
        message = error.message[:1].upper() + error.message[1:]
        if best is None or best.id == "0":
            self.error = message
        else:
            best.error = message

    def _build(self, root: Node) -> tuple[dict | None, list[tuple[str, Node]]]:
        """(tree, [(path in the tree, node)]) for `root`, children before their group is
        assembled; iterative, so no posted depth reaches Python's recursion limit."""
        built: dict[int, tuple[dict | None, list[tuple[str, Node]]]] = {}
        order = list(root.walk())
        for node in reversed(order):  # children first
            if not node.is_group:
                built[id(node)] = (self._condition(node), [("", node)])
                continue
            parts = [built.pop(id(child)) for child in node.children]
            parts = [(tree, paths) for tree, paths in parts if tree is not None]
            built[id(node)] = _assemble(node, parts)
        return built[id(root)]

    def _condition(self, node: Node) -> dict | None:
        try:
            return _CONDITIONS[node.type](node, self.catalogue)
        except _Unfinished as e:
            if self._strict:
                node.error = str(e)
            else:
                node.unfinished = str(e)
            return None
        except _RowError as e:
            node.error = str(e)
            return None

    # --- for the template -------------------------------------------------------------

    def prepare(self) -> "RuleBuilder":
        """Give each node what its row shows: operator choices, the value input, ..."""
        for node in self.root.walk():
            node.ui = _ui(node, self.catalogue)
        return self


def _assemble(node: Node, parts) -> tuple[dict | None, list[tuple[str, Node]]]:
    own = [("", node)]
    if not parts:
        return None, own
    match = node.match
    if match in ("all", "any") and len(parts) == 1:
        tree, paths = parts[0]
        return tree, own + paths
    if match == "none" and len(parts) == 1:
        tree, paths = parts[0]
        return {"not": tree}, own + [(_join("not", p), n) for p, n in paths]
    key = "any" if match == "none" else match
    prefix = "not.any" if match == "none" else key
    paths = list(own)
    for i, (_tree, child_paths) in enumerate(parts):
        paths += [(_join(f"{prefix}.{i}", p), n) for p, n in child_paths]
    group = {key: [tree for tree, _ in parts]}
    return ({"not": group} if match == "none" else group), paths


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if path else prefix


# --- Conditions: posted fields -> JSON ------------------------------------------------------


class _RowError(ValueError):
    """A row whose values do not fit: shown next to it."""


class _Unfinished(_RowError):
    """A row started but missing a value: left out while editing, refused when saving."""


def _whole(text: str, what: str, *, default: int | None = None) -> int:
    text = text.strip()
    if not text and default is not None:
        return default
    if not text:
        raise _Unfinished(f"{what} is missing.")
    if not _WHOLE.fullmatch(text):
        raise _RowError(f"{what} must be a whole number, 0 or more.")
    return int(text)


def _number(text: str):
    text = text.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    if not _NUMBER.match(text) or len(text) > 30:
        raise ValueError(text)
    value = float(text)
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else value


def _typed(text: str, attr_type: str, what: str):
    """One value of an attribute of `attr_type`, from its text."""
    if attr_type == "number":
        try:
            return _number(text)
        except ValueError:
            raise _RowError(f"{what} needs a number, not “{text}”.") from None
    if attr_type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "yes"):
            return True
        if lowered in ("false", "no"):
            return False
        raise _RowError(f"{what} needs yes or no.")
    if attr_type in ("date", "datetime") and not _DATE.match(text):
        raise _RowError(f"{what} needs a date (YYYY-MM-DD), not “{text}”.")
    return text


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _relative(amount: str, unit: str, what: str) -> dict:
    if unit not in RELATIVE_UNITS:
        raise _RowError(f"{what}: choose days, weeks or months.")
    return {"amount": _whole(amount, "The amount"), "unit": unit}


def _attribute(node: Node, catalogue: Catalogue) -> dict | None:
    name, op = node.get("attribute"), node.get("op")
    if not name:
        return None
    attr_type = catalogue.types.get(name)
    if attr_type is None:
        raise _RowError(f"“{name}” is not an attribute of this workspace.")
    ops = _attribute_ops(attr_type)
    op = op or ops[0]
    if op not in ops and op not in rules_schema.OPS_BY_TYPE.get(attr_type, ()):
        raise _RowError(f"“{op_label(op)}” does not apply to {attr_type} attributes.")
    label = catalogue.attribute_labels.get(name, name)
    what = f"{label} {op_label(op)}"
    condition = {"attribute": name, "op": op}
    value = _attribute_value(node, attr_type, op, what)
    if value is not _NONE:
        condition["value"] = value
    return condition


_NONE = object()


def _attribute_value(node: Node, attr_type: str, op: str, what: str):
    kind = value_kind(attr_type, op)
    raw = node.get("value")
    if kind == "none":
        return _NONE
    if kind == "relative":
        return _relative(node.get("amount"), node.get("unit") or "days", what)
    if kind == "list":
        items = _items(raw)
        if not items:
            raise _Unfinished(f"{what} needs one or more values, separated by commas.")
        if len(items) > rules_schema.MAX_LIST_VALUES:
            raise _RowError(f"A list holds at most {rules_schema.MAX_LIST_VALUES} values.")
        return [_typed(item, attr_type, what) for item in items]
    if not raw:
        raise _Unfinished(f"{what} needs a value.")
    if kind == "date":
        return _typed(raw, "date", what)
    if op in rules_schema.TEXT_OPS:
        return raw
    return _typed(raw, attr_type, what)


def _guess(text: str):
    """An event property's value as what it looks like; quotes keep it text."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return _number(text)
    except ValueError:
        return text


def _property(row: dict[str, str], what: str) -> dict | None:
    name, op = row.get("prop", ""), row.get("op", "") or "is"
    if not name:
        return None
    if op not in PROPERTY_OPS:
        raise _RowError(f"“{op}” is not an operator for event properties.")
    what = f"{what} where {name} {op_label(op)}"
    condition = {"property": name, "op": op}
    raw = row.get("value", "")
    kind = _property_kind(op)
    if kind == "none":
        return condition
    if kind == "relative":
        condition["value"] = _relative(row.get("amount", ""), row.get("unit") or "days", what)
        return condition
    if kind == "list":
        items = _items(raw)
        if not items:
            raise _Unfinished(f"{what} needs one or more values, separated by commas.")
        condition["value"] = [_guess(item) for item in items]
        return condition
    if not raw:
        raise _Unfinished(f"{what} needs a value.")
    if kind == "date":
        condition["value"] = _typed(raw, "date", what)
    elif op in rules_schema.COMPARISON_OPS:
        if _DATE.match(raw):
            condition["value"] = raw
        else:
            try:
                condition["value"] = _number(raw)
            except ValueError:
                raise _RowError(f"{what} needs a number or a date (YYYY-MM-DD).") from None
    elif op in rules_schema.TEXT_OPS:
        condition["value"] = raw
    else:
        condition["value"] = _guess(raw)
    return condition


def _event(node: Node, catalogue: Catalogue) -> dict | None:
    name = node.get("event")
    if not name:
        return None
    condition: dict = {"event": name}
    count_op = node.get("count_op") or "gte"
    if count_op not in dict(COUNT_OPS):
        raise _RowError("Choose how many times: at least, more than, exactly, at most, fewer than.")
    count = _whole(node.get("count"), "The count", default=1)
    condition["count"] = {"op": count_op, "value": count}
    window = _window(node)
    if window is not None:
        condition["time"] = window
    where = [_property(row, name) for row in _where_rows(node)]
    where = [w for w in where if w is not None]
    if where:
        condition["where"] = where
    return condition


def _window(node: Node) -> dict | None:
    """The time window of an event or message row (None: at any time)."""
    time_op = node.get("time_op") or "any_time"
    if time_op not in dict(TIME_OPS):
        raise _RowError("Choose when: at any time, in the last, more than … ago or between.")
    if time_op == "any_time":
        return None
    unit = node.get("unit") or "days"
    if unit not in WINDOW_UNITS:
        raise _RowError("Choose minutes, hours or days.")
    window = {"op": time_op, "unit": unit}
    if time_op == "between_last":
        window["from"] = _whole(node.get("amount"), "“From”")
        window["to"] = _whole(node.get("to"), "“To”")
        if window["from"] > window["to"]:
            raise _RowError("Between: the first amount must not be more than the second.")
    else:
        window["amount"] = _whole(node.get("amount"), "The amount")
    return window


def _message(node: Node, catalogue: Catalogue) -> dict | None:
    """A message row is complete as soon as it is one ("was sent a message at any time"):
    its channel and campaign are optional narrowings."""
    op = node.get("message_op") or "received"
    if op not in dict(MESSAGE_OPS):
        raise _RowError("Choose was sent, was not sent, opened, clicked or bounced.")
    message = {}
    channel = node.get("channel")
    if channel:
        if channel not in dict(MESSAGE_CHANNELS):
            raise _RowError("Choose email, SMS or push (or any message).")
        message["channel"] = channel
    campaign = node.get("campaign")
    if campaign:
        if not _SEGMENT_ID.fullmatch(campaign) or int(campaign) < 1:
            raise _RowError("Choose a campaign from the list.")
        message["campaign"] = int(campaign)
    condition: dict = {"message": message, "op": op}
    window = _window(node)
    if window is not None:
        condition["time"] = window
    return condition


def _tag(node: Node, catalogue: Catalogue) -> dict | None:
    name = node.get("tag")
    if not name:
        return None
    op = node.get("tag_op") or "has"
    if op not in dict(TAG_OPS):
        raise _RowError("Choose has or does not have.")
    return {"tag": name, "op": op}


def _audience(node: Node, catalogue: Catalogue) -> dict | None:
    name = node.get("audience")
    if not name:
        return None
    op = node.get("member_op") or "in"
    if op not in dict(MEMBERSHIP_OPS):
        raise _RowError("Choose is in or is not in.")
    return {"audience": name, "op": op}


def _segment(node: Node, catalogue: Catalogue) -> dict | None:
    raw = node.get("segment")
    if not raw:
        return None
    if not _SEGMENT_ID.fullmatch(raw) or int(raw) < 1:
        raise _RowError("Choose a segment from the list.")
    op = node.get("member_op") or "in"
    if op not in dict(MEMBERSHIP_OPS):
        raise _RowError("Choose is in or is not in.")
    return {"segment": int(raw), "op": op}


_CONDITIONS = {
    "attribute": _attribute,
    "event": _event,
    "tag": _tag,
    "audience": _audience,
    "segment": _segment,
    "message": _message,
}


def _attribute_ops(attr_type: str) -> list[str]:
    """The operators offered for `attr_type` (a text's for a type that does not exist)."""
    return offered_ops(attr_type) or offered_ops(AttributeType.STRING)


# --- A stored tree -> nodes ------------------------------------------------------------------


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(_text(item) for item in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _property_text(value) -> str:
    """A property value as typed back: texts that would read as numbers are quoted."""
    if isinstance(value, tuple):
        return ", ".join(_property_text(item) for item in value)
    if isinstance(value, str) and not isinstance(_guess(value), str):
        return f'"{value}"'
    return _text(value)


def _from_tree(tree) -> Node:
    """Nodes (ids assigned later by _renumber) for a parsed rule tree, iteratively."""
    root_holder = Node("x", {"type": "group"})
    stack = [(tree, root_holder)]
    while stack:
        item, parent = stack.pop()
        node = _node_for(item)
        parent.children.append(node)
        if isinstance(item, All | Any):
            stack.extend((child, node) for child in reversed(item.nodes))
        elif isinstance(item, Not):
            inner = item.node.nodes if isinstance(item.node, Any) else (item.node,)
            stack.extend((child, node) for child in reversed(inner))
    return root_holder.children[0]


def _node_for(item) -> Node:
    match item:
        case All():
            return Node("x", {"type": "group", "match": "all"})
        case Any():
            return Node("x", {"type": "group", "match": "any"})
        case Not():
            return Node("x", {"type": "group", "match": "none"})
        case AttributeCondition(attribute=name, op=op, value=value):
            fields = {"type": "attribute", "attribute": name, "op": op}
            if isinstance(value, RelativeDate):
                fields |= {"amount": str(value.amount), "unit": value.unit}
            elif value is not None:
                fields["value"] = _text(value)
            return Node("x", fields)
        case EventCondition():
            return Node("x", _event_fields(item))
        case TagCondition(tag=tag, op=op):
            return Node("x", {"type": "tag", "tag": tag, "tag_op": op})
        case AudienceCondition(audience=audience, op=op):
            return Node("x", {"type": "audience", "audience": audience, "member_op": op})
        case SegmentCondition(segment=segment, op=op):
            return Node("x", {"type": "segment", "segment": str(segment), "member_op": op})
        case MessageCondition(op=op, campaign=campaign, channel=channel, time=window):
            fields = {"type": "message", "message_op": op, "channel": channel or ""}
            fields["campaign"] = str(campaign) if campaign is not None else ""
            return Node("x", fields | _window_fields(window))
    raise TypeError(f"not a rule node: {item!r}")


def _window_fields(window: Window) -> dict[str, str]:
    fields = {"time_op": window.op}
    if window.op in ("within_last", "before_last"):
        fields |= {"amount": str(window.amount), "unit": window.unit}
    elif window.op == "between_last":
        fields |= {"amount": str(window.start), "to": str(window.end), "unit": window.unit}
    return fields


def _event_fields(item: EventCondition) -> dict[str, str]:
    fields = {
        "type": "event",
        "event": item.event,
        "count_op": item.count.op,
        "count": str(item.count.value),
    } | _window_fields(item.time)
    for i, where in enumerate(item.where):
        fields |= {f"w{i}_prop": where.property, f"w{i}_op": where.op}
        if isinstance(where.value, RelativeDate):
            fields |= {f"w{i}_amount": str(where.value.amount), f"w{i}_unit": where.value.unit}
        elif where.value is not None:
            fields[f"w{i}_value"] = _property_text(where.value)
    return fields


# --- What each row shows ---------------------------------------------------------------------


def _ui(node: Node, catalogue: Catalogue) -> dict:
    if node.is_group:
        return {"can_nest": node.depth + 1 <= min(UI_MAX_DEPTH, MAX_DEPTH)}
    if node.type == "attribute":
        name = node.get("attribute")
        attr_type = catalogue.types.get(name, "")
        ops = _attribute_ops(attr_type) if attr_type else []
        op = node.get("op")
        if attr_type and op and op not in ops and op in rules_schema.OPS_BY_TYPE.get(attr_type, ()):
            ops.append(op)  # a stored rule may use an operator the builder does not offer
        op = op if op in ops else (ops[0] if ops else "")
        known = not name or attr_type != ""
        return {
            "attr_type": attr_type,
            "unknown": "" if known else name,
            "op": op,
            "ops": op_choices(ops),
            "kind": value_kind(attr_type, op) if op else "none",
        }
    if node.type == "event":
        rows = []
        for i, row in enumerate(_where_rows(node)):
            op = row.get("op") if row.get("op") in PROPERTY_OPS else "is"
            rows.append({"i": str(i), "row": row, "op": op, "kind": _property_kind(op)})
        name = node.get("event")
        return {
            "unknown": name if name and name not in catalogue.events else "",
            "time_op": node.get("time_op") or "any_time",
            "where": rows,
            "can_add_where": len(rows) < MAX_WHERE,
        }
    if node.type == "message":
        campaign = node.get("campaign")
        known = {str(pk) for pk, _label in catalogue.campaigns}
        return {
            "op": node.get("message_op") or "received",
            "time_op": node.get("time_op") or "any_time",
            # a stored rule may name a campaign the picker does not list (deleted, or
            # past the picker's length): still shown, by its id
            "unknown_campaign": campaign if campaign and campaign not in known else "",
        }
    if node.type == "tag":
        return {"op": node.get("tag_op") or "has"}
    return {"op": node.get("member_op") or "in"}


def _property_kind(op: str) -> str:
    """The input of a property filter's value: properties are untyped, so never a number
    or yes/no input (the value is read as what it looks like, see _guess)."""
    return value_kind(AttributeType.STRING, op)
