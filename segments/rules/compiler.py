"""Rule trees to SQL: one parameterized query over the people of a workspace.

    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=now))

Events, tags, companies and messages (the send ledger) are correlated EXISTS subqueries ("at
least n events" with n > 1 one over the people grouped by their count); custom attributes
are JSONB lookups (equality as `attributes @> {"key": value}`, which the GIN index answers,
number comparisons as SQL/JSON path predicates); dates compare on their date part in the
workspace's time zone. The shapes were chosen with benchmarks/segments_suite.py (1M people,
10M events, against hand-written SQL) so that a whole workspace and one person are both
fast. A condition is never NULL for a person (see sql.py), so the operators a person without
the attribute satisfies (is_not, not_in, not_contains, is_empty) are simply the negations of
those they cannot."""

import json
from datetime import date, datetime, timedelta
from functools import reduce
from operator import and_, or_

from django.apps import apps
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, Lower, TruncDate
from django.db.models.lookups import Exact, IContains, IEndsWith, IStartsWith
from django.utils import timezone

from audiences.models import AudienceMember, TargetAudience
from people.models import AttributeType, Company, Event, Person, PersonTag, Tag
from segments.models import Segment, SegmentKind, SegmentMember
from segments.rules.dates import ABSOLUTE_COMPARISONS, relative_constraints
from segments.rules.describe import campaign_names, describe_node
from segments.rules.schema import (
    ABSOLUTE_DATE_OPS,
    COMPARISON_OPS,
    RELATIVE_DATE_OPS,
    All,
    Any,
    AttributeCondition,
    AudienceCondition,
    EventCondition,
    MessageCondition,
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

# The delivery statuses of a message that reached its provider's far end ("received").
RECEIVED_STATUSES = ("sent", "delivered")
# The column a message condition's window reads, per operator: bounces have no sent_at
# (the provider refused the message), so theirs is when the send was attempted.
MESSAGE_MOMENTS = {
    "received": "sent_at",
    "not_received": "sent_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "message_at",  # Coalesce(sent_at, created_at), see _Compiler.message
}

# The operators a person without the value satisfies, as negations of those they cannot.
NEGATED = {"is_not": "is", "not_in": "in", "not_contains": "contains", "is_empty": "is_not_empty"}
SQL_COMPARISONS = {"lt": "<", "lte": "<=", "gte": ">=", "gt": ">"}
LIKE_LOOKUPS = {"starts_with": IStartsWith, "ends_with": IEndsWith, "contains": IContains}

# "True for everyone", written against the never-null primary key: an empty Q() would be
# dropped by `|`, turning "true OR x" into "x".
ALWAYS = Q(pk__isnull=False)

# The most groups and conditions the snapshot segments named by one tree may add to its
# query: each snapshot's rules are inlined wherever it is named (and those of the snapshots
# it names in turn), so a mention counts its whole expansion, every time. A tree itself holds
# at most 500 nodes; no real rule inlines four times that, and this many keeps the compile
# and the SQL small. Real-time, static and query segments are read from their stored
# members and add nothing.
MAX_INLINED_NODES = 2000
# How deep snapshots may name snapshots that name snapshots: each level nests its tree (up
# to 20 groups deep) in the one above, which Python and Django compile recursively.
MAX_SEGMENT_NESTING = 10


def compile_rules(tree: Node, *, workspace, now: datetime, person_ids=None) -> Q:
    """The people of `workspace` that `tree` (from parse_rules) describes at `now`.

    `person_ids`: the query will be asked about these people only (real-time evaluation
    of a batch): the grouped event counts then read their events alone, instead of every
    event of that name in the workspace (the planner cannot take an `id = ANY(...)` of
    the outer query into a GROUP BY).

    Checks the tree's custom attributes against the workspace's catalogue first (RuleError
    as parse_rules), and its segment conditions (see check_inlining); an event nobody has
    sent yet simply matches nobody.
    """
    return _Compiler(tree, workspace=workspace, now=now, person_ids=person_ids).compile(tree)


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
    campaigns = campaign_names(tree, workspace=workspace)
    return [
        (node.path, describe_node(node, campaigns=campaigns), bool(value))
        for node, value in zip(nodes, row, strict=True)
    ]


class _Compiler:
    def __init__(
        self, tree: Node, *, workspace, now: datetime, inlining: "_Inlining | None" = None,
        person_ids=None,
    ):  # fmt: skip
        if timezone.is_naive(now):
            raise ValueError("compile_rules needs a timezone-aware `now`")
        self.workspace = workspace
        self.now = now
        self.person_ids = list(person_ids) if person_ids is not None else None
        self.time_zone = workspace.time_zone
        self.today = now.astimezone(workspace.tzinfo).date()
        # Events are not checked here: a stored tree (a built-in segment in a new
        # workspace, say) may name an event nobody has sent yet, which simply matches nobody.
        self.attribute_types = check_catalogue(tree, workspace=workspace, events=False)
        self._compiled: dict[int, Q] = {}
        if inlining is None:  # the tree compiled: what it inlines is checked once, up front
            inlining = _Inlining(workspace)
            inlining.check(tree)
        self.inlining = inlining

    def compile(self, node: Node) -> Q:
        # explain_rules asks for every node of a tree, so each subtree is compiled once.
        if id(node) not in self._compiled:
            self._compiled[id(node)] = self._compile(node)
        return self._compiled[id(node)]

    def _compile(self, node: Node) -> Q:
        match node:
            case All(nodes=nodes):
                return reduce(and_, self._children(nodes, tag_op="has_not", audience_op="not_in"))
            case Any(nodes=nodes):
                return reduce(or_, self._children(nodes, tag_op="has", audience_op="in"))
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
            case MessageCondition():
                return self.message(node)
        raise TypeError(f"not a rule node: {node!r}")

    def _children(self, nodes, *, tag_op: str, audience_op: str) -> list[Q]:
        """The conditions of a group's children. Under `any`, several "has tag" children
        become one EXISTS over those tags (and "in audience" likewise); under `all`, several
        "has_not" / "not_in" become one NOT EXISTS: one pass over the memberships instead of
        one per name, and no OR of subqueries, which PostgreSQL costs as if each ran once
        per person (an estimate so high that it compiles the query with JIT first)."""

        def merged(kind, op):
            found = [node for node in nodes if isinstance(node, kind) and node.op == op]
            return found if len(found) > 1 else []

        tags = merged(TagCondition, tag_op)
        audiences = merged(AudienceCondition, audience_op)
        out = [
            self.compile(node)
            for node in nodes
            if not any(node is other for other in (*tags, *audiences))
        ]
        positive = tag_op == "has"  # under any: has / in; under all: has_not / not_in
        if tags:
            has = self._has_tag([node.tag for node in tags])
            out.append(has if positive else ~has)
        if audiences:
            is_in = self._in_audience([node.audience for node in audiences])
            out.append(is_in if positive else ~is_in)
        return out

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
            self.window(node.time), name=node.event
        )
        for where in node.where:
            events = events.filter(self.property_filter(where))

        def at_least(n: int) -> Q:
            # n = 1: a plain EXISTS, which PostgreSQL plans as a semi (or anti) join over a
            # whole population and as one index probe for one person.
            if n == 0:
                return ALWAYS
            if n == 1:
                return Q(Exists(events.filter(person=OuterRef("pk"))))
            # n > 1: EXISTS over the people with at least n such events (GROUP BY person
            # HAVING count >= n), joined on the person. Under AND (or NOT) PostgreSQL plans
            # it as a semi (anti) join with one pass over the index (workspace, name,
            # occurred_at, person): 2-200x faster on a whole workspace than a correlated
            # "OFFSET n-1" probe per person, which it cannot turn into a join. For one
            # person (filter(pk=...), explain_rules, or under OR) the person condition is
            # pushed into the grouped subquery, so it reads that person's events only, on
            # (workspace, person, name, -occurred_at).
            counted = events
            if self.person_ids is not None:
                counted = events.filter(
                    person_id__in=RawSQL("SELECT unnest(%s::bigint[])", [self.person_ids])
                )
            return Q(
                predicate(
                    "EXISTS (SELECT 1 FROM {people} AS counted WHERE counted.person_id = {pk})",
                    people=Subquery(
                        counted.order_by()
                        .values("person_id")
                        .annotate(matching=Count("*"))
                        .filter(matching__gte=n)
                        .values("person_id")
                    ),
                    pk=F("pk"),
                )
            )

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

    def window(self, window: Window, moment: str = "occurred_at") -> Q:
        """The rows whose `moment` (a datetime column) falls in `window` (shared/API.md,
        event conditions); message conditions use it on the ledger's columns."""

        def ago(amount: int) -> datetime:
            return self.now - timedelta(**{window.unit: amount})

        match window.op:
            case "within_last":
                return Q(**{f"{moment}__gte": ago(window.amount)})
            case "before_last":
                return Q(**{f"{moment}__lt": ago(window.amount)})
            case "between_last":
                return Q(**{f"{moment}__gte": ago(window.end), f"{moment}__lte": ago(window.start)})
        return Q()  # any time: filter() ignores an empty Q

    def message(self, node: MessageCondition) -> Q:
        """The send ledger: one EXISTS over the person's deliveries (test sends never
        count), on the index (workspace, person, -created_at); not_received is its NOT."""
        # The ledger (campaigns.models.Delivery) belongs to the campaigns app, above
        # segments in the app chain (pyproject.toml, import-linter): segments only reads
        # it, through the app registry, and imports nothing of campaigns.
        delivery = apps.get_model("campaigns", "Delivery")
        messages = delivery.objects.for_workspace(self.workspace).filter(
            person=OuterRef("pk"), is_test=False
        )
        if node.campaign is not None:
            messages = messages.filter(campaign_id=node.campaign)
        if node.channel is not None:
            messages = messages.filter(campaign__channel=node.channel)
        match node.op:
            case "received" | "not_received":
                messages = messages.filter(status__in=RECEIVED_STATUSES)
            case "opened":
                # Human opens only: the ledger's opened_at / clicked_at are a person's
                # (campaigns.tracking keeps Apple Mail Privacy Protection, image-proxy
                # prefetches and link scanners apart, in machine_opened_at / _clicked_at).
                messages = messages.filter(opened_at__isnull=False)
            case "clicked":
                messages = messages.filter(clicked_at__isnull=False)
            case "bounced":
                messages = messages.alias(message_at=Coalesce("sent_at", "created_at")).filter(
                    status="bounced"
                )
        moment = MESSAGE_MOMENTS[node.op]
        exists = Q(Exists(messages.filter(self.window(node.time, moment))))
        return ~exists if node.op == "not_received" else exists

    def property_filter(self, where: PropertyFilter) -> Q:
        source = _Json(self, "properties", where.property, where.type, untyped=True)
        return self.apply(source, where.op, where.value)

    def tag(self, node: TagCondition) -> Q:
        has = self._has_tag([node.tag])
        return has if node.op == "has" else ~has

    def _has_tag(self, names: list[str]) -> Q:
        """The person has one of the tags `names`."""
        # Tag names are unique case-insensitively (Lower("name") index): match them so too.
        # The tags are an uncorrelated subquery (for one name a scalar one: at most one
        # row, none matches nobody) that PostgreSQL runs once, so a person's tags are
        # looked up by tag id on (workspace, tag, person). A join to the tags instead
        # hid from the planner how many people have the tag.
        tags = Tag.objects.for_workspace(self.workspace).filter(_lower_name_in(names)).order_by()
        tagged = PersonTag.objects.for_workspace(self.workspace).filter(person=OuterRef("pk"))
        if len(names) == 1:
            tagged = tagged.filter(tag=Subquery(tags.values("pk")[:1]))
        else:
            tagged = tagged.filter(tag__in=tags.values("pk"))
        return Q(Exists(tagged))

    def audience(self, node: AudienceCondition) -> Q:
        is_in = self._in_audience([node.audience])
        return is_in if node.op == "in" else ~is_in

    def _in_audience(self, names: list[str]) -> Q:
        """The person is a member of one of the audiences `names` (as _has_tag)."""
        # Audience names are unique case-insensitively; an unknown name matches nobody.
        audiences = (
            TargetAudience.objects.for_workspace(self.workspace)
            .filter(_lower_name_in(names))
            .order_by()
        )
        members = AudienceMember.objects.filter(workspace=self.workspace, person=OuterRef("pk"))
        if len(names) == 1:
            members = members.filter(audience=Subquery(audiences.values("pk")[:1]))
        else:
            members = members.filter(audience__in=audiences.values("pk"))
        return Q(Exists(members))

    def segment(self, node: SegmentCondition) -> Q:
        """Membership of another segment: its stored members (real-time, static, query),
        its own rules inlined (snapshot), or everybody. A snapshot is compiled once however
        often the tree (and the snapshots it names) name it; _Inlining.check has refused
        chains that lead back to themselves or inline too much."""
        segment = self.inlining.segment(node)
        if segment.kind == SegmentKind.EVERYONE:
            is_in = ALWAYS
        elif segment.kind == SegmentKind.SNAPSHOT:
            compiled = self.inlining.compiled
            if segment.pk not in compiled:
                inner_tree = self.inlining.tree(segment)
                inner = _Compiler(
                    inner_tree, workspace=self.workspace, now=self.now, inlining=self.inlining,
                    person_ids=self.person_ids,
                )  # fmt: skip
                compiled[segment.pk] = inner.compile(inner_tree)
            is_in = compiled[segment.pk]
        else:
            members = SegmentMember.objects.filter(
                segment=segment, person=OuterRef("pk"), exited_at__isnull=True
            )
            if self.person_ids is not None:
                # PostgreSQL turns the EXISTS into a join with every member of the segment
                # (87,000 of them read for a batch of 1,000 people: 185 ms, 1 ms so).
                members = members.filter(
                    person_id__in=RawSQL("SELECT unnest(%s::bigint[])", [self.person_ids])
                )
            is_in = Q(Exists(members))
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


def check_inlining(tree: Node, *, workspace) -> None:
    """Refuse (RuleError) a tree whose segment conditions cannot be compiled: a segment that
    is not in the workspace, snapshots naming each other in a circle, nested more than
    MAX_SEGMENT_NESTING deep or inlining more than MAX_INLINED_NODES nodes. compile_rules
    checks the same first; this checks it without compiling (when rules are saved)."""
    _Inlining(workspace).check(tree)


class _Inlining:
    """The segments that one compile reads: each named segment is looked up, parsed and
    compiled once however often it is named (a chain of snapshots each naming the previous
    one 400 times would otherwise be compiled 400 ** n times), and the nodes the snapshots
    add to the query are counted against one budget for the whole compile."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.compiled: dict[int, Q] = {}  # snapshot id -> its compiled rules
        self._segments: dict[int, Segment | None] = {}
        self._trees: dict[int, Node] = {}
        self._measures: dict[int, tuple[int, int]] = {}

    def segment(self, node: SegmentCondition) -> Segment:
        if node.segment not in self._segments:
            self._segments[node.segment] = (
                Segment.objects.for_workspace(self.workspace).filter(pk=node.segment).first()
            )
        segment = self._segments[node.segment]
        if segment is None:
            raise RuleError(node.path, f"there is no segment {node.segment} in this workspace")
        return segment

    def tree(self, segment: Segment) -> Node:
        if segment.pk not in self._trees:
            self._trees[segment.pk] = parse_rules(segment.rules)
        return self._trees[segment.pk]

    def check(self, tree: Node) -> None:
        """Refuse the tree at the first segment condition past the limits."""
        total = 0
        for node in _segment_conditions(tree):
            size, depth = self._measure(node, within=())
            total += size
            if depth > MAX_SEGMENT_NESTING:
                raise RuleError(
                    node.path,
                    f"the snapshot segments named here nest more than {MAX_SEGMENT_NESTING} "
                    "deep (a snapshot naming a snapshot that names another, ...); name a "
                    "real-time or scheduled query segment somewhere in the chain instead",
                )
            if total > MAX_INLINED_NODES:
                raise RuleError(
                    node.path,
                    f"the snapshot segments named here (with those they name, counted each "
                    f"time one is named) add more than {MAX_INLINED_NODES} conditions to the "
                    "rules; name them fewer times, or name real-time or scheduled query "
                    "segments instead, whose stored members are read without inlining",
                )

    def _measure(self, node: SegmentCondition, within: tuple[int, ...]) -> tuple[int, int]:
        """(nodes it inlines, how many snapshots deep it nests) for one segment condition
        inside the snapshots `within`; both capped just past their limits."""
        segment = self.segment(node)
        if segment.pk in within:
            raise RuleError(node.path, "a segment cannot depend on itself")
        if segment.kind != SegmentKind.SNAPSHOT:
            return 0, 0  # stored members or everybody: nothing inlined
        if segment.pk not in self._measures:
            if len(within) >= MAX_SEGMENT_NESTING:
                # Too deep wherever it is named from here (not remembered: named from
                # higher up, it may fit); check() refuses the whole tree anyway.
                return 0, MAX_SEGMENT_NESTING + 1
            tree = self.tree(segment)
            size, depth = sum(1 for _ in iter_nodes(tree)), 1
            for inner in _segment_conditions(tree):
                inner_size, inner_depth = self._measure(inner, (*within, segment.pk))
                size, depth = size + inner_size, max(depth, inner_depth + 1)
                if size > MAX_INLINED_NODES or depth > MAX_SEGMENT_NESTING:
                    break  # refused whatever else it names
            self._measures[segment.pk] = (
                min(size, MAX_INLINED_NODES + 1),
                min(depth, MAX_SEGMENT_NESTING + 1),
            )
        return self._measures[segment.pk]


def _segment_conditions(tree: Node) -> list[SegmentCondition]:
    return [node for node in iter_nodes(tree) if isinstance(node, SegmentCondition)]


def _lower_name_in(names: list[str]) -> Q:
    """`name` equals one of `names` case-insensitively (lower() in SQL, as the unique
    indexes on Lower("name") do)."""
    return reduce(or_, (Q(Exact(Lower("name"), Lower(Value(name)))) for name in names))


def _date_predicate(date_part, constraints) -> Q:
    """The date part meets every (comparison, date) constraint; false for a non-date."""
    template, params = _date_constraints(constraints)
    return Q(predicate(f"({template}) IS TRUE", *params, d=date_part))


def _date_constraints(constraints) -> tuple[str, list]:
    """SQL of the constraints on the date part `{d}`, and its parameters."""
    days = [day for _, day in constraints]
    if [comparison for comparison, _ in constraints] == [">=", "<="] and days[0] <= days[1]:
        # The date part is spelled out once (a CASE expression for JSON values): PostgreSQL
        # expands "x BETWEEN a AND b" into "x >= a AND x <= b", evaluating x twice.
        return "{d} <@ daterange(%s, %s, '[]')", days
    return " AND ".join(f"{{d}} {comparison} %s" for comparison, _ in constraints), days


# How far the date part of a date/datetime text can be from the day it starts with: an
# offset in the text (at most 15:59) and the workspace's (under 16 hours in the tz
# database) move the wall-clock time by under 32 hours, so at most 2 days either way.
TEXT_DATE_SLACK = timedelta(days=3)
# The longest window whose days are listed for local_date (a few kB of SQL at most).
MAX_LISTED_DAYS = 400


def _text_date_predicate(text, time_zone: str, constraints) -> Q:
    """_date_predicate for a date or datetime held as text (a JSON value).

    The text is first compared with the constraints widened by TEXT_DATE_SLACK: a plain
    comparison that every date meeting them passes (ISO dates compare as their texts do,
    byte by byte under COLLATE "C", and a text starting with a day D is >= D and < the day
    after), which spares most people the checks of local_date. When it confines the text's
    day to a window of at most MAX_LISTED_DAYS, local_date checks the day against the list
    of that window's days (a hash lookup) instead of a regular expression (a few
    microseconds a value in PostgreSQL, which builds the automaton anew each time).
    """
    lows = [day for comparison, day in constraints if comparison in ("=", ">", ">=")]
    highs = [day for comparison, day in constraints if comparison in ("=", "<", "<=")]
    low = max(lows) - TEXT_DATE_SLACK if lows and max(lows) - date.min > TEXT_DATE_SLACK else None
    high = (
        min(highs) + TEXT_DATE_SLACK
        if highs and date.max - min(highs) > TEXT_DATE_SLACK * 2
        else None
    )
    bounds, bound_params, days = [], [], None
    if low is not None:
        bounds.append('{t} COLLATE "C" >= %s')
        bound_params.append(low.isoformat())
    if high is not None:
        bounds.append('{t} COLLATE "C" < %s')
        bound_params.append((high + timedelta(days=1)).isoformat())
        if low is not None and (high - low).days < MAX_LISTED_DAYS:
            days = [(low + timedelta(days=n)).isoformat() for n in range((high - low).days + 1)]
    template, params = _date_constraints(constraints)
    return Q(
        predicate(
            f"({' AND '.join([*bounds, template])}) IS TRUE",
            *bound_params,
            *params,
            t=text,
            d=local_date(text, time_zone, days=days),
        )
    )


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
        # A SQL/JSON path predicate, `strict $."key" >= 100`: it compares numbers as numbers
        # ("10" > "9") and anything else with a number (a text, a boolean, a list, null, a
        # missing key) is false or unknown (NULL, the errors of strict mode being silenced by
        # @@), so never true. One operator call per person: 1.7x cheaper on a whole
        # workspace than a jsonb_typeof() guard around a jsonb comparison, and cheaper than
        # a ::numeric cast (which would fail on a text anyway).
        path = (
            f"strict $.{json.dumps(self.key, ensure_ascii=False)} {comparison} {json.dumps(number)}"
        )
        return Q(predicate("({doc} @@ %s::jsonpath) IS TRUE", path, doc=self.document))

    def on_dates(self, constraints) -> Q:
        return _text_date_predicate(json_text(self.document, self.key), self.time_zone, constraints)

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
