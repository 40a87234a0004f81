"""The SQL compiler against an independent Python reading of the contract (reference.py).

Hypothesis draws a workspace time zone, an evaluation time, people (built-in columns, every
type of custom attribute, events with properties, tags) and rule trees nesting all/any/not
over attribute, event and tag conditions; the people the SQL selects must be exactly those
the reference selects. Values cluster on the edges: today, window boundaries to the second,
month ends, missing/null/empty, text that is a number, LIKE wildcards.
"""

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from people.models import (
    AttributeDefinition,
    Company,
    Event,
    EventType,
    Person,
    PersonTag,
    Tag,
)
from segments.rules import compile_rules, describe_rules, parse_rules
from tests.factories import WorkspaceFactory
from tests.segments import reference

TYPES = {
    "plan": "string",
    "score": "number",
    "vip": "boolean",
    "birthday": "date",
    "last_seen": "datetime",
    "interests": "list",
}
EVENT_NAMES = ["App Launch", "Purchase"]
TAG_NAMES = ["VIP", "Newsletter"]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"]
NOWS = [
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # Paris changes to summer time this day
    datetime(2026, 11, 25, 23, 30, tzinfo=UTC),  # already the 26th east of UTC
    datetime(2026, 1, 31, 12, 0, tzinfo=UTC),  # + 1 month is clamped to 28 February
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC),  # a leap day
]
# Around "today" (which may be the UTC date +/- 1 in the workspace's zone) at the distances the
# relative operators draw: days 0, 1, 7, 30; weeks 1, 2; calendar months 1, 2.
DAY_OFFSETS = sorted(
    {
        sign * centre + shift
        for centre in (0, 1, 7, 14, 28, 29, 30, 31, 59, 60, 61)
        for sign in (1, -1)
        for shift in (-2, -1, 0, 1, 2)
    }
)
HOUR_OFFSETS = [-49, -25, -24.5, -23.5, -12, -1, 0, 0.5, 1, 11, 23, 25, 49]
SECOND = timedelta(seconds=1)
# On, just inside and just outside the windows the event conditions draw.
EVENT_AGES = [
    timedelta(0), -timedelta(hours=1), timedelta(seconds=30), timedelta(minutes=59),
    timedelta(hours=1), timedelta(hours=1) + SECOND, timedelta(hours=23),
    timedelta(days=1) - SECOND, timedelta(days=1), timedelta(days=1) + SECOND,
    timedelta(days=7) - SECOND, timedelta(days=7), timedelta(days=7) + SECOND,
    timedelta(days=30) - SECOND, timedelta(days=30), timedelta(days=30) + SECOND,
    timedelta(days=45),
]  # fmt: skip


# --- values near the edges ---------------------------------------------------------------


def days_near(now):
    return st.sampled_from(DAY_OFFSETS).map(lambda n: (now.date() + timedelta(days=n)).isoformat())


def datetimes_near(now):
    """ISO 8601 texts near `now`: with Z, with offsets, wall-clock (no offset), date only."""

    def render(hours, style):
        moment = now + timedelta(hours=hours)
        if style == "Z":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if style == "naive":
            return moment.strftime("%Y-%m-%dT%H:%M:%S")
        if style == "date":
            return moment.date().isoformat()
        return moment.astimezone(ZoneInfo(style)).isoformat()

    styles = st.sampled_from(["Z", "naive", "date", "Asia/Kolkata", "America/Los_Angeles"])
    return st.builds(render, st.sampled_from(HOUR_OFFSETS), styles)


def attribute_values(now):
    return st.fixed_dictionaries(
        {},
        optional={
            "plan": st.sampled_from([None, "", "Pro", "pro plan", "basic", "a%b", "x_y"]),
            "score": st.sampled_from([None, -1, 0, 9, 9.5, 10, 10.0, 100]),
            "vip": st.sampled_from([None, True, False]),
            "birthday": st.one_of(st.none(), st.just(""), days_near(now)),
            "last_seen": st.one_of(st.none(), datetimes_near(now)),
            "interests": st.lists(st.sampled_from(["Golf", "tennis", "CHESS"]), max_size=2),
        },
    )


def event_properties(now):
    return st.fixed_dictionaries(
        {},
        optional={
            "amount": st.sampled_from([5, 10, 20.5, "10"]),
            "platform": st.sampled_from(["ios", "iOS 17", "android", ""]),
            "items": st.sampled_from([["a", "B"], [], "a"]),
            "when": st.one_of(days_near(now), datetimes_near(now)),
            "2024": st.sampled_from([1, True, "x"]),
        },
    )


@cache  # strategies are built once per evaluation time, not once per example
def people(now):
    event = st.tuples(
        st.sampled_from(EVENT_NAMES), st.sampled_from(EVENT_AGES), event_properties(now)
    )
    return st.fixed_dictionaries(
        {
            "city": st.sampled_from(["London", "london", "Londonderry", "Paris", ""]),
            "company": st.sampled_from([None, "", "Acme", "acme labs"]),
            "created": st.sampled_from(HOUR_OFFSETS),
            "attributes": attribute_values(now),
            "events": st.lists(event, max_size=5),
            "tags": st.sets(st.sampled_from(TAG_NAMES)),
        }
    )


# --- rule trees ----------------------------------------------------------------------------


def named(key, name, operations):
    return operations.map(lambda rule: {key: name, **rule})


def operations(values, ops):
    return st.builds(lambda op, v: {"op": op, "value": v}, st.sampled_from(ops), values)


EMPTINESS = st.builds(lambda op: {"op": op}, st.sampled_from(["is_empty", "is_not_empty"]))
TEXT_OPS = ["is", "is_not", "starts_with", "ends_with", "contains", "not_contains"]
RELATIVE_OPS = ["was", "was_within", "was_more_than", "will_be_in", "will_be_within",
                "will_be_more_than"]  # fmt: skip
ABSOLUTE_OPS = ["before", "until", "since", "after", "is", "is_not", "lt", "lte", "gte", "gt"]


def text_ops(values):
    return st.one_of(
        operations(st.sampled_from(values), TEXT_OPS),
        operations(st.lists(st.sampled_from(values), min_size=1, max_size=3), ["in", "not_in"]),
        EMPTINESS,
    )


def number_ops(values):
    return st.one_of(
        operations(st.sampled_from(values), ["is", "is_not", "lt", "lte", "gte", "gt"]),
        operations(st.lists(st.sampled_from(values), min_size=1, max_size=3), ["in", "not_in"]),
        EMPTINESS,
    )


def date_ops(now):
    relative = st.one_of(
        st.builds(lambda n: {"amount": n, "unit": "days"}, st.sampled_from([0, 1, 7, 30])),
        st.builds(lambda n: {"amount": n, "unit": "weeks"}, st.sampled_from([1, 2])),
        st.builds(lambda n: {"amount": n, "unit": "months"}, st.sampled_from([1, 2])),
    )
    return st.one_of(
        operations(relative, RELATIVE_OPS),
        operations(days_near(now), ABSOLUTE_OPS),
        operations(st.lists(days_near(now), min_size=1, max_size=3), ["in", "not_in"]),
        EMPTINESS,
    )


def attribute_conditions(now):
    return st.one_of(
        named("attribute", "city", text_ops(["London", "lon", "DON", "Paris"])),
        named("attribute", "company", text_ops(["Acme", "acme", "Labs"])),
        named("attribute", "created_at", date_ops(now)),
        named("attribute", "plan", text_ops(["Pro", "pro", "plan", "%", "_", "a%b"])),
        named("attribute", "score", number_ops([-1, 0, 9, 9.5, 10, 100])),
        named("attribute", "vip", boolean_ops()),
        named("attribute", "birthday", date_ops(now)),
        named("attribute", "last_seen", date_ops(now)),
        named(
            "attribute",
            "interests",
            st.one_of(
                operations(
                    st.sampled_from(["golf", "TENNIS", "chess", "x"]), ["contains", "not_contains"]
                ),  # fmt: skip
                EMPTINESS,
            ),
        ),
    )


def boolean_ops():
    return st.one_of(
        operations(st.booleans(), ["is", "is_not"]),
        operations(st.lists(st.booleans(), min_size=1, max_size=2), ["in", "not_in"]),
        EMPTINESS,
    )


def property_filters(now):
    return st.one_of(
        named("property", "amount", number_ops([5, 10, 20.5])),
        named("property", "amount", operations(st.just("10"), ["is", "is_not"])),
        named("property", "platform", text_ops(["ios", "IOS", "andr", "o"])),
        named("property", "items", operations(st.sampled_from(["a", "b"]), ["contains"])),
        named("property", "when", date_ops(now)),
        named("property", "2024", operations(st.sampled_from([1, True, "x"]), ["is", "is_not"])),
    )


WINDOW_AMOUNTS = {"days": [0, 1, 7, 30], "hours": [1, 23], "minutes": [59]}


def windows():
    def in_unit(unit):
        amounts = st.sampled_from(WINDOW_AMOUNTS[unit])
        return st.one_of(
            st.builds(
                lambda op, n: {"op": op, "amount": n, "unit": unit},
                st.sampled_from(["within_last", "before_last"]),
                amounts,
            ),
            st.builds(
                lambda a, b: {
                    "op": "between_last",
                    "from": min(a, b),
                    "to": max(a, b),
                    "unit": unit,
                },
                amounts,
                amounts,
            ),
        )

    units = st.sampled_from(["days", "days", "hours", "minutes"])  # days half of the time
    return st.one_of(st.just({"op": "any_time"}), units.flatmap(in_unit))


def event_conditions(now):
    count = st.fixed_dictionaries(
        {"op": st.sampled_from(["eq", "lt", "lte", "gte", "gt"]), "value": st.integers(0, 3)}
    )
    return st.fixed_dictionaries(
        {"event": st.sampled_from(EVENT_NAMES)},
        optional={
            "count": count,
            "time": windows(),
            "where": st.lists(property_filters(now), max_size=2),
        },
    )


def tag_conditions():
    return st.fixed_dictionaries(
        {
            "tag": st.sampled_from(["VIP", "vip", "Newsletter", "Unknown"]),
            "op": st.sampled_from(["has", "has_not"]),
        }
    )


@cache
def trees(now):
    # Explicit weights: a flat one_of would give events 1 leaf in 11 (it flattens the nine
    # attribute branches), and an event condition carries the most logic.
    kinds = {"attribute": attribute_conditions(now), "event": event_conditions(now),
             "tag": tag_conditions()}  # fmt: skip
    leaves = st.sampled_from(["attribute", "event", "event", "tag"]).flatmap(kinds.__getitem__)
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda nodes: {"all": nodes}),
            st.lists(children, min_size=1, max_size=3).map(lambda nodes: {"any": nodes}),
            children.map(lambda node: {"not": node}),
        ),
        max_leaves=5,
    )


@st.composite
def scenarios(draw):
    now = draw(st.sampled_from(NOWS))
    zone = draw(st.sampled_from(ZONES))
    # Many small trees rather than a few big ones: a condition deep in a big tree is often
    # hidden by a sibling that decides alone. Drawn before the people, which take most of
    # the data Hypothesis may draw per example.
    rule_trees = draw(st.lists(trees(now), min_size=3, max_size=8))
    return zone, now, draw(st.lists(people(now), min_size=1, max_size=10)), rule_trees


# --- the same people in the database and in Python -----------------------------------------


def store(zone, now, drawn):
    """Write the drawn people in a new workspace (a handful of bulk queries); return it and
    the same people as reference records."""
    workspace = WorkspaceFactory(time_zone=zone)
    AttributeDefinition.objects.bulk_create(
        AttributeDefinition(workspace=workspace, key=key, type=type_)
        for key, type_ in TYPES.items()
    )
    EventType.objects.bulk_create(
        EventType(workspace=workspace, name=name, first_seen=now, last_seen=now)
        for name in EVENT_NAMES
    )
    companies = {
        name: company
        for name, company in zip(
            ["", "Acme", "acme labs"],
            Company.objects.bulk_create(
                Company(workspace=workspace, name=name) for name in ["", "Acme", "acme labs"]
            ),
            strict=True,
        )
    }
    tags = {tag.name: tag for tag in Tag.objects.bulk_create(
        Tag(workspace=workspace, name=name) for name in TAG_NAMES
    )}  # fmt: skip

    rows = Person.objects.bulk_create(
        Person(
            workspace=workspace,
            external_id=f"p{index}",
            city=person["city"],
            company=companies.get(person["company"]),
            attributes=person["attributes"],
        )
        for index, person in enumerate(drawn)
    )
    records = []
    for row, person in zip(rows, drawn, strict=True):
        row.created_at = now + timedelta(hours=person["created"])
        records.append(
            reference.PersonRecord(
                key=row.external_id,
                created_at=row.created_at,
                builtins={"city": person["city"], "company": person["company"] or ""},
                attributes=person["attributes"],
                events=[
                    reference.Event(name, now - age, properties)
                    for name, age, properties in person["events"]
                ],
                tags=person["tags"],
            )
        )
    Person.objects.bulk_update(rows, ["created_at"])
    Event.objects.bulk_create(
        Event(
            workspace=workspace,
            person=row,
            name=event.name,
            occurred_at=event.occurred_at,
            properties=event.properties,
        )  # fmt: skip
        for row, record in zip(rows, records, strict=True)
        for event in record.events
    )
    PersonTag.objects.bulk_create(
        PersonTag(workspace=workspace, person=row, tag=tags[name])
        for row, person in zip(rows, drawn, strict=True)
        for name in person["tags"]
    )
    return workspace, records


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(scenario=scenarios())
def test_sql_selects_exactly_whom_the_reference_selects(db, scenario):
    zone, now, drawn, rule_trees = scenario
    workspace, records = store(zone, now, drawn)
    context = reference.Context(now=now, zone=ZoneInfo(zone), types=TYPES)
    for rules in rule_trees:
        tree = parse_rules(rules)  # compile_rules checks it against the catalogues
        note(f"{zone} {now.isoformat()}: {describe_rules(tree)}\n{rules}")
        selected = Person.objects.for_workspace(workspace).filter(
            compile_rules(tree, workspace=workspace, now=now)
        )
        expected = {record.key for record in records if reference.evaluate(rules, record, context)}
        assert set(selected.values_list("external_id", flat=True)) == expected
