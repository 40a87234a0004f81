"""Rule trees to SQL: one parameterized query over the people of a workspace.

    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=now))

Events, tags and companies are correlated EXISTS subqueries; custom attributes are JSONB
lookups (equality as `attributes @> {"key": value}`, which the GIN index answers); dates
compare on their date part in the workspace's time zone. A condition is never NULL for a
person (see sql.py), so the operators a person without the attribute satisfies (is_not,
not_in, not_contains, is_empty) are simply the negations of those they cannot.
"""

import json
from datetime import date, datetime, timedelta
from functools import reduce
from operator import and_, or_

from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q, Value
from django.db.models.functions import Lower, TruncDate
from django.db.models.lookups import Exact, IContains, IEndsWith, IStartsWith
from django.utils import timezone

from audiences.models import AudienceMember
from people.models import AttributeType, Company, Event, Person, PersonTag
from segments.models import Segment, SegmentKind, SegmentMember
from segments.rules.dates import ABSOLUTE_COMPARISONS, relative_constraints
from segments.rules.describe import describe_node
from segments.rules.schema import (
    ABSOLUTE_DATE_OPS,
    COMPARISON_OPS,
    RELATIVE_DATE_OPS,
    All,
    Any,
    AttributeCondition,
    AudienceCondition,
    EventCondition,
    Node,
    Not,
    PropertyFilter,
    RuleError,
    SegmentCondition,
    TagCondition,
    Window,
    check_catalogue,
    iter_nodes,
    parse_rules,
)
from segments.rules.sql import json_text, json_value, local_date, predicate

# The operators a person without the value satisfies, as negations of those they cannot.
NEGATED = {"is_not": "is", "not_in": "in", "not_contains": "contains", "is_empty": "is_not_empty"}
SQL_COMPARISONS = {"lt": "<", "lte": "<=", "gte": ">=", "gt": ">"}
LIKE_LOOKUPS = {"starts_with": IStartsWith, "ends_with": IEndsWith, "contains": IContains}

# "True for everyone", written against the never-null primary key: an empty Q() would be
# dropped by `|`, turning "true OR x" into "x".
ALWAYS = Q(pk__isnull=False)


def compile_rules(tree: Node, *, workspace, now: datetime) -> Q:
    """The people of `workspace` that `tree` (from parse_rules) describes at `now`.

    Checks the tree's custom attributes against the workspace's catalogue first (RuleError
    as parse_rules); an event nobody has sent yet simply matches nobody.
    """
    return _Compiler(tree, workspace=workspace, now=now).compile(tree)


def explain_rules(
    tree: Node, person: Person, *, workspace, now: datetime
) -> list[tuple[str, str, bool]]:
    """Each node of `tree` as (path, description, true for `person`), parents first.

    One query: every node's condition becomes a boolean column of the person's row.
    Raises Person.DoesNotExist for a person outside the workspace.
    """
    compiler = _Compiler(tree, workspace=workspace, now=now)
    nodes = list(iter_nodes(tree))
    columns = {
        f"node_{index}": ExpressionWrapper(compiler.compile(node), output_field=BooleanField())
        for index, node in enumerate(nodes)
    }
    row = (
        Person.objects.for_workspace(workspace)
        .filter(pk=person.pk)
        .annotate(**columns)
        .values_list(*columns)
        .get()
    )
    return [
        (node.path, describe_node(node), bool(value))
        for node, value in zip(nodes, row, strict=True)
    ]


class _Compiler:
    def __init__(self, tree: Node, *, workspace, now: datetime):
        if timezone.is_naive(now):
            raise ValueError("compile_rules needs a timezone-aware `now`")
        self.workspace = workspace
        self.now = now
        self.time_zone = workspace.time_zone
        self.today = now.astimezone(workspace.tzinfo).date()
        # Events are not checked here: a stored tree (a built-in segment in a new
        # workspace, say) may name an event nobody has sent yet, which simply matches nobody.
        self.attribute_types = check_catalogue(tree, workspace=workspace, events=False)
        self._compiled: dict[int, Q] = {}
        self._segment_stack: set[int] = set()

    def compile(self, node: Node) -> Q:
        # explain_rules asks for every node of a tree, so each subtree is compiled once.
        if id(node) not in self._compiled:
            self._compiled[id(node)] = self._compile(node)
        return self._compiled[id(node)]

    def _compile(self, node: Node) -> Q:
        match node:
            case All(nodes=nodes):
                return reduce(and_, (self.compile(child) for child in nodes))
            case Any(nodes=nodes):
                return reduce(or_, (self.compile(child) for child in nodes))
            case Not(node=child):
                return ~self.compile(child)
            case AttributeCondition():
                return self.attribute(node)
            case EventCondition():
                return self.event(node)
            case TagCondition():
                return self.tag(node)
            case AudienceCondition():
                return self.audience(node)
            case SegmentCondition():
                return self.segment(node)
        raise TypeError(f"not a rule node: {node!r}")

    # --- conditions ----------------------------------------------------------------------

    def attribute(self, node: AttributeCondition) -> Q:
        if node.attribute == "created_at":
            source = _CreatedAt(self)
        elif node.attribute == "company":
            source = _Company(self)
        elif node.builtin:
            source = _Column(node.attribute)
        else:
            type_ = self.attribute_types[node.attribute]
            source = _Json(self, "attributes", node.attribute, type_)
        return self.apply(source, node.op, node.value)

    def event(self, node: EventCondition) -> Q:
        events = Event.objects.for_workspace(self.workspace).filter(
            self.window(node.time), person=OuterRef("pk"), name=node.event
        )
        for where in node.where:
            events = events.filter(self.property_filter(where))

        def at_least(n: int) -> Q:
            # Correlated, so a one-person check (filter(pk=...), explain_rules) reads only that
            # person's events, on the index (workspace, person, name, -occurred_at), and
            # OFFSET n-1 LIMIT 1 stops at the n-th instead of counting them all. For n = 1
            # PostgreSQL plans a whole population as a semi (or anti) join.
            return ALWAYS if n == 0 else Q(Exists(events[n - 1 : n]))

        n = node.count.value
        match node.count.op:
            case "gte":
                return at_least(n)
            case "gt":
                return at_least(n + 1)
            case "lt":  # people with no such event at all included, as for lte and eq 0
                return ~at_least(n)
            case "lte":
                return ~at_least(n + 1)
            case _:  # eq
                return ~at_least(1) if n == 0 else at_least(n) & ~at_least(n + 1)

    def window(self, window: Window) -> Q:
        def ago(amount: int) -> datetime:
            return self.now - timedelta(**{window.unit: amount})

        match window.op:
            case "within_last":
                return Q(occurred_at__gte=ago(window.amount))
            case "before_last":
                return Q(occurred_at__lt=ago(window.amount))
            case "between_last":
                return Q(occurred_at__gte=ago(window.end), occurred_at__lte=ago(window.start))
        return Q()  # any time: filter() ignores an empty Q

    def property_filter(self, where: PropertyFilter) -> Q:
        source = _Json(self, "properties", where.property, where.type, untyped=True)
        return self.apply(source, where.op, where.value)

    def tag(self, node: TagCondition) -> Q:
        # Tag names are unique case-insensitively (Lower("name") index): match them so too.
        tagged = PersonTag.objects.for_workspace(self.workspace).filter(
            Exact(Lower("tag__name"), Lower(Value(node.tag))),
            person=OuterRef("pk"),
            tag__workspace=self.workspace,
        )
        has = Q(Exists(tagged))
        return has if node.op == "has" else ~has

    def audience(self, node: AudienceCondition) -> Q:
        # Audience names are unique case-insensitively; an unknown name matches nobody.
        members = AudienceMember.objects.filter(
            Exact(Lower("audience__name"), Lower(Value(node.audience))),
            workspace=self.workspace,
            person=OuterRef("pk"),
            audience__workspace=self.workspace,
        )
        is_in = Q(Exists(members))
        return is_in if node.op == "in" else ~is_in

    def segment(self, node: SegmentCondition) -> Q:
        """Membership of another segment: its stored members (real-time, static, query),
        its own rules inlined (snapshot), or everybody. A chain of segments that leads
        back to itself is refused."""
        segment = Segment.objects.for_workspace(self.workspace).filter(pk=node.segment).first()
        if segment is None:
            raise RuleError(node.path, f"there is no segment {node.segment} in this workspace")
        if segment.pk in self._segment_stack:
            raise RuleError(node.path, "a segment cannot depend on itself")
        if segment.kind == SegmentKind.EVERYONE:
            is_in = ALWAYS
        elif segment.kind == SegmentKind.SNAPSHOT:
            inner_tree = parse_rules(segment.rules)
            inner = _Compiler(inner_tree, workspace=self.workspace, now=self.now)
            inner._segment_stack = self._segment_stack | {segment.pk}
            is_in = inner.compile(inner_tree)
        else:
            is_in = Q(
                Exists(
                    SegmentMember.objects.filter(
                        segment=segment, person=OuterRef("pk"), exited_at__isnull=True
                    )
                )
            )
        return is_in if node.op == "in" else ~is_in

    # --- operators -----------------------------------------------------------------------

    def apply(self, source, op: str, value) -> Q:
        """`op` with `value` on one attribute or property."""
        if op in NEGATED:
            return ~self.apply(source, NEGATED[op], value)
        if op == "is_not_empty":
            return source.present()
        if op == "is":
            return source.equals(value)
        if op == "in":
            return source.one_of(value)
        if op in COMPARISON_OPS and isinstance(value, date):
            return source.on_dates(((SQL_COMPARISONS[op], value),))
        if op in COMPARISON_OPS:
            return source.compare(SQL_COMPARISONS[op], value)
        if op in RELATIVE_DATE_OPS:
            return source.on_dates(relative_constraints(op, value, self.today))
        if op in ABSOLUTE_DATE_OPS:
            return source.on_dates(((ABSOLUTE_COMPARISONS[op], value),))
        return source.text(op, value)


def _date_predicate(date_part, constraints) -> Q:
    """The date part meets every (comparison, date) constraint; false for a non-date."""
    days = [day for _, day in constraints]
    if [comparison for comparison, _ in constraints] == [">=", "<="]:
        # the date part is spelled out once (it is a CASE expression for JSON values)
        return Q(predicate("({d} BETWEEN %s AND %s) IS TRUE", *days, d=date_part))
    template = " AND ".join(f"{{d}} {comparison} %s" for comparison, _ in constraints)
    return Q(predicate(f"({template}) IS TRUE", *days, d=date_part))


class _Column:
    """A built-in text column of Person; "" is how a person lacks it."""

    def __init__(self, field: str):
        self.field = field

    def present(self) -> Q:
        return ~Q(**{self.field: ""})

    def equals(self, value) -> Q:
        return Q(**{self.field: value})

    def one_of(self, values) -> Q:
        return Q(**{f"{self.field}__in": values})

    def text(self, op: str, value: str) -> Q:
        return Q(LIKE_LOOKUPS[op](F(self.field), value))


class _Company:
    """Company.name through Person.company; no company or an empty name is no value."""

    def __init__(self, compiler: _Compiler):
        self.companies = Company.objects.for_workspace(compiler.workspace).filter(
            pk=OuterRef("company_id")
        )

    def _having(self, condition: Q) -> Q:
        return Q(Exists(self.companies.filter(condition)))

    def present(self) -> Q:
        return self._having(~Q(name=""))

    def equals(self, value) -> Q:
        return self._having(Q(name=value))

    def one_of(self, values) -> Q:
        return self._having(Q(name__in=values))

    def text(self, op: str, value: str) -> Q:
        return self._having(Q(LIKE_LOOKUPS[op](F("name"), value)))


class _CreatedAt:
    """Person.created_at, a datetime every person has, compared on its local date."""

    def __init__(self, compiler: _Compiler):
        self.date_part = TruncDate("created_at", tzinfo=compiler.workspace.tzinfo)

    def present(self) -> Q:
        return ALWAYS

    def equals(self, value: str) -> Q:
        return self.on_dates((("=", date.fromisoformat(value)),))

    def one_of(self, values) -> Q:
        return reduce(or_, (self.equals(value) for value in values))

    def on_dates(self, constraints) -> Q:
        return _date_predicate(self.date_part, constraints)


class _Json:
    """One key of a JSONB document: a custom attribute of Person (typed by the catalogue)
    or an event property (`untyped`: typed by the value a filter gives, so a text filter
    reads "contains" on a list of texts as well as on a text)."""

    def __init__(self, compiler: _Compiler, document: str, key: str, type_, untyped=False):
        self.document = document
        self.key = key
        self.type = type_
        self.untyped = untyped
        self.value = json_value(document, key)
        self.time_zone = compiler.time_zone

    def present(self) -> Q:
        return Q(
            predicate(
                "COALESCE({v}, 'null'::jsonb) NOT IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb)",
                v=self.value,
            )
        )

    def equals(self, value) -> Q:
        if self.type in (AttributeType.DATE, AttributeType.DATETIME):
            return self.on_dates((("=", date.fromisoformat(value)),))
        # Containment is what the GIN index (jsonb_path_ops) on Person.attributes answers;
        # it compares types too, so the number 10 never equals the text "10".
        return Q(**{f"{self.document}__contains": {self.key: value}})

    def one_of(self, values) -> Q:
        return reduce(or_, (self.equals(value) for value in values))

    def compare(self, comparison: str, number) -> Q:
        # jsonb compares numbers as numbers ("10" > "9"); the type guard keeps a text or a
        # boolean out, which jsonb would otherwise order before or after every number.
        return Q(
            predicate(
                f"CASE WHEN jsonb_typeof({{v}}) = 'number' THEN {{v}} {comparison} %s::jsonb"
                " ELSE false END",
                json.dumps(number),
                v=self.value,
            )
        )

    def on_dates(self, constraints) -> Q:
        date_part = local_date(json_text(self.document, self.key), self.time_zone)
        return _date_predicate(date_part, constraints)

    def text(self, op: str, value: str) -> Q:
        if op == "contains" and self.type == AttributeType.LIST:
            return self._has_element(value)
        matches = Q(
            predicate(
                "(jsonb_typeof({v}) = 'string' AND {match}) IS TRUE",
                v=self.value,
                match=LIKE_LOOKUPS[op](json_text(self.document, self.key), value),
            )
        )
        if op == "contains" and self.untyped:
            return matches | self._has_element(value)
        return matches

    def _has_element(self, value: str) -> Q:
        return Q(
            predicate(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text("
                "CASE WHEN jsonb_typeof({v}) = 'array' THEN {v} END) AS element"
                " WHERE lower(element) = lower(%s))",
                value,
                v=self.value,
            )
        )
