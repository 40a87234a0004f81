"""segments/rules/compiler.py: every operator at its edges, against real PostgreSQL."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from accounts.audit import Actor
from people.models import AttributeType, Event, Person
from segments.rules import compile_rules, describe_rules, explain_rules, parse_rules
from segments.rules.dates import add_months
from segments.rules.schema import RuleError
from segments.rules.sql import DATE_OR_DATETIME
from tests.factories import (
    AttributeDefinitionFactory,
    CompanyFactory,
    EventFactory,
    EventTypeFactory,
    PersonFactory,
    PersonTagFactory,
    TagFactory,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def ws(workspace):
    """The workspace with a catalogue: one custom attribute of each type, two events."""
    for key, type_ in [
        ("plan", AttributeType.STRING),
        ("score", AttributeType.NUMBER),
        ("vip", AttributeType.BOOLEAN),
        ("birthday", AttributeType.DATE),
        ("last_seen", AttributeType.DATETIME),
        ("interests", AttributeType.LIST),
    ]:
        AttributeDefinitionFactory(workspace=workspace, key=key, type=type_)
    for name in ["App Launch", "Purchase"]:
        EventTypeFactory(workspace=workspace, name=name)
    return workspace


def person(workspace, key, **fields):
    return PersonFactory(workspace=workspace, external_id=key, **fields)


def matching(workspace, rules, now=NOW) -> set[str]:
    tree = parse_rules(rules, workspace=workspace)
    people = Person.objects.for_workspace(workspace).filter(
        compile_rules(tree, workspace=workspace, now=now)
    )
    return set(people.values_list("external_id", flat=True))


def attr(name, op, value=None) -> dict:
    rule = {"attribute": name, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


# --- built-in text columns -------------------------------------------------------------------


@pytest.fixture
def cities(ws):
    for key, city in [("upper", "London"), ("lower", "london"), ("longer", "Londonderry"),
                      ("paris", "Paris"), ("none", "")]:  # fmt: skip
        person(ws, key, city=city)
    return ws


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is", "London", {"upper"}),
        ("is_not", "London", {"lower", "longer", "paris", "none"}),
        ("in", ["London", "Paris"], {"upper", "paris"}),
        ("not_in", ["London", "Paris"], {"lower", "longer", "none"}),
        ("starts_with", "LON", {"upper", "lower", "longer"}),
        ("ends_with", "DON", {"upper", "lower"}),
        ("contains", "ondo", {"upper", "lower", "longer"}),
        ("not_contains", "derry", {"upper", "lower", "paris", "none"}),
        ("is_empty", None, {"none"}),
        ("is_not_empty", None, {"upper", "lower", "longer", "paris"}),
    ],
)
def test_builtin_text_column(cities, op, value, expected):
    assert matching(cities, attr("city", op, value)) == expected


def test_like_wildcards_in_values_are_literal(ws):
    person(ws, "percent", last_name="100% Smith")
    person(ws, "underscore", last_name="a_b")
    person(ws, "plain", last_name="100 Smith")
    person(ws, "ab", last_name="axb")
    assert matching(ws, attr("last_name", "contains", "0%")) == {"percent"}
    assert matching(ws, attr("last_name", "contains", "_")) == {"underscore"}
    assert matching(ws, attr("last_name", "starts_with", "a_")) == {"underscore"}
    assert matching(ws, attr("last_name", "ends_with", "%")) == set()


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is", "Acme", {"acme"}),
        ("is_not", "Acme", {"labs", "no_company", "unnamed"}),
        ("in", ["Acme", "Nope"], {"acme"}),
        ("not_in", ["Acme"], {"labs", "no_company", "unnamed"}),
        ("starts_with", "acm", {"acme", "labs"}),
        ("contains", "LAB", {"labs"}),
        ("not_contains", "lab", {"acme", "no_company", "unnamed"}),
        ("is_empty", None, {"no_company", "unnamed"}),
        ("is_not_empty", None, {"acme", "labs"}),
    ],
)
def test_company_is_the_name_of_the_persons_company(ws, op, value, expected):
    person(ws, "acme", company=CompanyFactory(workspace=ws, name="Acme"))
    person(ws, "labs", company=CompanyFactory(workspace=ws, name="Acme Labs Ltd"))
    person(ws, "unnamed", company=CompanyFactory(workspace=ws, name=""))
    person(ws, "no_company")
    assert matching(ws, attr("company", op, value)) == expected


# --- custom attributes: missing, null, empty ------------------------------------------------


@pytest.fixture
def plans(ws):
    person(ws, "missing", attributes={})
    person(ws, "null", attributes={"plan": None})
    person(ws, "empty", attributes={"plan": ""})
    person(ws, "pro", attributes={"plan": "Pro"})
    person(ws, "pro_plan", attributes={"plan": "pro plan"})
    return ws


ABSENT = {"missing", "null", "empty"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("is", "Pro", {"pro"}),
        ("is", "pro", set()),  # equality is exact; the text operators ignore case
        ("is_not", "Pro", ABSENT | {"pro_plan"}),
        ("in", ["Pro", "basic"], {"pro"}),
        ("not_in", ["Pro", "basic"], ABSENT | {"pro_plan"}),
        ("is_empty", None, ABSENT),
        ("is_not_empty", None, {"pro", "pro_plan"}),
        ("starts_with", "PRO", {"pro", "pro_plan"}),
        ("ends_with", "Plan", {"pro_plan"}),
        ("contains", "O", {"pro", "pro_plan"}),
        ("not_contains", "plan", ABSENT | {"pro"}),
    ],
)
def test_text_attribute_missing_null_and_empty(plans, op, value, expected):
    assert matching(plans, attr("plan", op, value)) == expected


@pytest.mark.parametrize(
    ("op", "negated"),
    [
        ("is_not", "is"),
        ("not_in", "in"),
        ("not_contains", "contains"),
        ("is_empty", "is_not_empty"),
    ],
)
def test_negative_operators_are_exact_complements(plans, op, negated):
    value = {"is": "Pro", "in": ["Pro"], "contains": "pro"}.get(negated)
    everyone = set(Person.objects.for_workspace(plans).values_list("external_id", flat=True))
    assert matching(plans, attr("plan", op, value)) == everyone - matching(
        plans, attr("plan", negated, value)
    )
    # and under NOT, nobody goes missing (a NULL condition would drop the person on both sides)
    assert matching(plans, {"not": attr("plan", op, value)}) == matching(
        plans, attr("plan", negated, value)
    )


# --- numbers ---------------------------------------------------------------------------------


@pytest.fixture
def scores(ws):
    for key, score in [("minus", -1), ("nine", 9), ("ten", 10), ("ten_float", 10.0),
                       ("ten_half", 10.5), ("hundred", 100)]:  # fmt: skip
        person(ws, key, attributes={"score": score})
    person(ws, "missing")
    person(ws, "null", attributes={"score": None})
    # left over from before the attribute was typed: never a number, never a crash
    person(ws, "text", attributes={"score": "10"})
    person(ws, "bool", attributes={"score": True})
    return ws


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gt", 9, {"ten", "ten_float", "ten_half", "hundred"}),  # 10 > 9 as numbers, not text
        ("gte", 10, {"ten", "ten_float", "ten_half", "hundred"}),
        ("lt", 10, {"minus", "nine"}),
        ("lte", 10, {"minus", "nine", "ten", "ten_float"}),
        ("gt", 9.99, {"ten", "ten_float", "ten_half", "hundred"}),
        ("lt", 0, {"minus"}),
        ("is", 10, {"ten", "ten_float"}),
        ("is", 10.5, {"ten_half"}),
        ("is_not", 10, {"minus", "nine", "ten_half", "hundred", "missing", "null", "text", "bool"}),
        ("in", [9, 100], {"nine", "hundred"}),
        ("not_in", [9, 100, -1, 10.5, 10], {"missing", "null", "text", "bool"}),
        ("is_empty", None, {"missing", "null"}),
    ],
)
def test_number_attribute(scores, op, value, expected):
    assert matching(scores, attr("score", op, value)) == expected


def test_boolean_attribute(ws):
    person(ws, "yes", attributes={"vip": True})
    person(ws, "no", attributes={"vip": False})
    person(ws, "missing")
    assert matching(ws, attr("vip", "is", True)) == {"yes"}
    assert matching(ws, attr("vip", "is", False)) == {"no"}
    assert matching(ws, attr("vip", "is_not", True)) == {"no", "missing"}
    assert matching(ws, attr("vip", "in", [True, False])) == {"yes", "no"}
    assert matching(ws, attr("vip", "is_empty")) == {"missing"}


def test_list_attribute(ws):
    person(ws, "golf", attributes={"interests": ["Golf", "chess"]})
    person(ws, "tennis", attributes={"interests": ["tennis"]})
    person(ws, "golfer", attributes={"interests": ["golfer"]})
    person(ws, "none", attributes={"interests": []})
    person(ws, "missing")
    assert matching(ws, attr("interests", "contains", "GOLF")) == {"golf"}  # whole elements
    assert matching(ws, attr("interests", "not_contains", "golf")) == {
        "tennis",
        "golfer",
        "none",
        "missing",
    }
    assert matching(ws, attr("interests", "is_empty")) == {"none", "missing"}
    assert matching(ws, attr("interests", "is_not_empty")) == {"golf", "tennis", "golfer"}


# --- dates -----------------------------------------------------------------------------------


def day(offset: int) -> str:
    return (NOW.date() + timedelta(days=offset)).isoformat()


@pytest.fixture
def birthdays(ws):
    for offset in [-31, -30, -29, -14, -1, 0, 1, 6, 7, 8]:
        person(ws, f"d{offset}", attributes={"birthday": day(offset)})
    person(ws, "missing")
    person(ws, "garbage", attributes={"birthday": "someday"})
    person(ws, "impossible", attributes={"birthday": "2026-13-45"})
    return ws


def rel(amount, unit="days"):
    return {"amount": amount, "unit": unit}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("was", rel(30), {"d-30"}),  # exactly 30 days ago
        ("was", rel(0), {"d0"}),  # today
        ("was", rel(2, "weeks"), {"d-14"}),
        ("was_within", rel(30), {"d-30", "d-29", "d-14", "d-1", "d0"}),  # both ends included
        ("was_more_than", rel(29), {"d-31", "d-30"}),
        ("was_more_than", rel(30), {"d-31"}),
        ("will_be_in", rel(7), {"d7"}),
        ("will_be_in", rel(1, "weeks"), {"d7"}),
        ("will_be_within", rel(7), {"d0", "d1", "d6", "d7"}),
        ("will_be_more_than", rel(7), {"d8"}),
        ("before", day(0), {"d-31", "d-30", "d-29", "d-14", "d-1"}),
        ("until", day(-29), {"d-31", "d-30", "d-29"}),
        ("since", day(7), {"d7", "d8"}),
        ("after", day(7), {"d8"}),
        ("lt", day(-30), {"d-31"}),
        ("lte", day(-30), {"d-31", "d-30"}),
        ("gte", day(8), {"d8"}),
        ("gt", day(7), {"d8"}),
        ("is", day(1), {"d1"}),
        ("in", [day(1), day(-1)], {"d1", "d-1"}),
        ("is_empty", None, {"missing"}),
    ],
)
def test_date_attribute(birthdays, op, value, expected):
    assert matching(birthdays, attr("birthday", op, value)) == expected


def test_a_date_that_is_not_a_date_is_not_equal_to_any(birthdays):
    result = matching(birthdays, attr("birthday", "is_not", day(0)))
    assert {"missing", "garbage", "impossible"} <= result
    assert "d0" not in result


# Values a date attribute may still hold from before its type changed: none may fail the
# query (a bad cast would fail it for everyone), none is a date.
LEFTOVERS = [
    "2026-02-30", "2026-02-29T10:00:00Z", "0000-01-01", "2026-11-25T10:00:00+16:00",
    "2026-11-25T24:00:00Z", "soon", "", 5, True, ["2026-11-25"], {"day": "2026-11-25"},
]  # fmt: skip
DATE_RULES = [
    attr("last_seen", "was", rel(0)),
    attr("last_seen", "was_within", rel(100, "months")),
    attr("last_seen", "will_be_more_than", rel(0)),
    attr("last_seen", "before", "2100-01-01"),
    attr("last_seen", "after", "0001-01-01"),
    attr("last_seen", "gte", "0001-01-01"),
    attr("last_seen", "in", ["2026-11-25", "2026-03-01"]),
]


def test_values_that_are_not_dates_never_fail_a_date_condition(ws):
    for index, value in enumerate(LEFTOVERS):
        person(ws, f"leftover{index}", attributes={"last_seen": value})
    person(ws, "real", attributes={"last_seen": "2026-11-25T10:00:00Z"})
    assert matching(ws, {"any": DATE_RULES}) == {"real"}
    assert matching(ws, {"not": {"any": DATE_RULES}}) == {f"leftover{i}" for i in range(11)}


def test_the_date_pattern_accepts_exactly_the_calendar_days(db):
    def is_day(text):
        try:
            return date.fromisoformat(text) is not None
        except ValueError:
            return False

    texts = [
        f"{year:04d}-{month:02d}-{day:02d}"
        for year in (0, 1, 4, 100, 1900, 2000, 2023, 2024, 2100, 2400, 9999)
        for month in range(14)
        for day in range(33)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT t, t ~ %s FROM unnest(%s::text[]) AS t", [DATE_OR_DATETIME, texts])
        accepted = dict(cursor.fetchall())
    assert accepted == {text: is_day(text) for text in texts}


def test_a_date_without_a_time_is_that_day_in_every_time_zone(ws):
    ws.time_zone = "America/New_York"
    ws.save()
    person(ws, "date", attributes={"last_seen": "2026-11-05", "birthday": "2026-11-05"})
    person(ws, "offset", attributes={"last_seen": "2026-11-05T02:00:00Z"})  # the 4th there
    assert matching(ws, attr("last_seen", "is", "2026-11-05")) == {"date"}
    assert matching(ws, attr("last_seen", "is", "2026-11-04")) == {"offset"}
    assert matching(ws, attr("birthday", "is", "2026-11-05")) == {"date"}


@pytest.mark.parametrize(
    ("now", "op", "value", "stored"),
    [
        # 31 March - 1 month = 28 February (clamped), 31 January + 1 month = 28 February
        (datetime(2026, 3, 31, 12, tzinfo=UTC), "was", rel(1, "months"), "2026-02-28"),
        (datetime(2026, 1, 31, 12, tzinfo=UTC), "will_be_in", rel(1, "months"), "2026-02-28"),
        (datetime(2028, 3, 31, 12, tzinfo=UTC), "was", rel(1, "months"), "2028-02-29"),
        (datetime(2026, 11, 25, 12, tzinfo=UTC), "was", rel(12, "months"), "2025-11-25"),
        (datetime(2026, 1, 15, 12, tzinfo=UTC), "was", rel(2, "months"), "2025-11-15"),
    ],
)
def test_months_are_calendar_months(ws, now, op, value, stored):
    person(ws, "hit", attributes={"birthday": stored})
    person(ws, "day_after", attributes={"birthday": f"{stored[:8]}{int(stored[8:]) + 1:02d}"})
    assert matching(ws, attr("birthday", op, value), now=now) == {"hit"}


def test_add_months_clamps_the_day():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert add_months(date(2026, 12, 15), 1) == date(2027, 1, 15)
    assert add_months(date(2026, 1, 15), -13) == date(2024, 12, 15)


# --- time zones ------------------------------------------------------------------------------

# 10:00 UTC on 26 November is 11:00 in Paris: both call the day the 26th.
TZ_NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
# 23:30 UTC on the 25th is already 00:30 on the 26th in Paris.
LATE_EVENING_UTC = "2026-11-25T23:30:00Z"


def test_datetime_attribute_date_part_is_taken_in_the_workspace_time_zone(ws):
    person(ws, "late", attributes={"last_seen": LATE_EVENING_UTC})
    person(ws, "offset", attributes={"last_seen": "2026-11-26T00:30:00+01:00"})
    person(ws, "naive", attributes={"last_seen": "2026-11-25T23:30:00"})  # wall time
    person(ws, "date_only", attributes={"last_seen": "2026-11-25"})
    today, yesterday = attr("last_seen", "was", rel(0)), attr("last_seen", "was", rel(1))

    assert matching(ws, today, now=TZ_NOW) == set()
    assert matching(ws, yesterday, now=TZ_NOW) == {"late", "offset", "naive", "date_only"}

    ws.time_zone = "Europe/Paris"
    ws.save()
    assert matching(ws, today, now=TZ_NOW) == {"late", "offset"}
    assert matching(ws, yesterday, now=TZ_NOW) == {"naive", "date_only"}
    assert matching(ws, attr("last_seen", "is", "2026-11-26"), now=TZ_NOW) == {"late", "offset"}
    assert matching(ws, attr("last_seen", "after", "2026-11-25"), now=TZ_NOW) == {"late", "offset"}


def test_created_at_date_part_is_taken_in_the_workspace_time_zone(ws):
    late = person(ws, "late")
    early = person(ws, "early")
    Person.objects.filter(pk=late.pk).update(created_at=datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    Person.objects.filter(pk=early.pk).update(created_at=datetime(2026, 11, 25, 22, 59, tzinfo=UTC))
    today = attr("created_at", "was", rel(0))

    assert matching(ws, today, now=TZ_NOW) == set()
    assert matching(ws, attr("created_at", "is", "2026-11-25"), now=TZ_NOW) == {"late", "early"}
    ws.time_zone = "Europe/Paris"
    ws.save()
    assert matching(ws, today, now=TZ_NOW) == {"late"}
    assert matching(ws, attr("created_at", "before", "2026-11-26"), now=TZ_NOW) == {"early"}
    assert matching(ws, attr("created_at", "is_empty"), now=TZ_NOW) == set()
    assert matching(ws, attr("created_at", "is_not_empty"), now=TZ_NOW) == {"late", "early"}


def test_today_is_today_in_the_workspace_time_zone(ws):
    person(ws, "d25", attributes={"birthday": "2026-11-25"})
    person(ws, "d26", attributes={"birthday": "2026-11-26"})
    just_before_midnight_utc = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    today = attr("birthday", "was", rel(0))
    assert matching(ws, today, now=just_before_midnight_utc) == {"d25"}
    ws.time_zone = "Europe/Paris"
    ws.save()
    assert matching(ws, today, now=just_before_midnight_utc) == {"d26"}
    ws.time_zone = "America/Los_Angeles"  # still the afternoon of the 25th there
    ws.save()
    assert matching(ws, today, now=just_before_midnight_utc) == {"d25"}


def test_daylight_saving_day(ws):
    # Paris moves to summer time at 01:00 UTC on 29 March 2026.
    ws.time_zone = "Europe/Paris"
    ws.save()
    person(ws, "before_change", attributes={"last_seen": "2026-03-28T23:30:00Z"})  # 00:30 +01
    person(ws, "after_change", attributes={"last_seen": "2026-03-29T22:30:00Z"})  # 00:30 +02 30th
    now = datetime(2026, 3, 29, 12, tzinfo=UTC)
    assert matching(ws, attr("last_seen", "was", rel(0)), now=now) == {"before_change"}
    assert matching(ws, attr("last_seen", "will_be_in", rel(1)), now=now) == {"after_change"}


# --- events ----------------------------------------------------------------------------------


def events(person_, name, *ages, **properties):
    for age in ages:
        EventFactory(person=person_, name=name, occurred_at=NOW - age, properties=properties)


@pytest.fixture
def launches(ws):
    person(ws, "never")
    events(person(ws, "purchaser"), "Purchase", timedelta(days=1))
    for n in (1, 2, 3):
        events(person(ws, f"x{n}"), "App Launch", *[timedelta(days=i) for i in range(1, n + 1)])
    events(person(ws, "old"), "App Launch", timedelta(days=40), timedelta(days=50))
    return ws


def launched(op, value, time=None):
    rule = {"event": "App Launch", "count": {"op": op, "value": value}}
    if time:
        rule["time"] = time
    return rule


ALL_LAUNCHERS = {"never", "purchaser", "x1", "x2", "x3", "old"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("gte", 1, {"x1", "x2", "x3", "old"}),
        ("gte", 2, {"x2", "x3", "old"}),
        ("gte", 3, {"x3"}),
        ("gte", 0, ALL_LAUNCHERS),
        ("gt", 0, {"x1", "x2", "x3", "old"}),
        ("gt", 2, {"x3"}),
        ("eq", 0, {"never", "purchaser"}),  # people with no events at all included
        ("eq", 1, {"x1"}),
        ("eq", 2, {"x2", "old"}),
        ("lt", 2, {"never", "purchaser", "x1"}),
        ("lt", 0, set()),
        ("lte", 2, {"never", "purchaser", "x1", "x2", "old"}),
    ],
)
def test_event_counts(launches, op, value, expected):
    assert matching(launches, launched(op, value)) == expected


def test_event_counts_within_a_window_include_people_without_events(launches):
    within_30 = {"op": "within_last", "amount": 30, "unit": "days"}
    assert matching(launches, launched("eq", 0, within_30)) == {"never", "purchaser", "old"}
    assert matching(launches, launched("lt", 2, within_30)) == {"never", "purchaser", "old", "x1"}
    assert matching(launches, launched("gte", 2, within_30)) == {"x2", "x3"}


@pytest.fixture
def edges(ws):
    thirty = timedelta(days=30)
    second = timedelta(seconds=1)
    events(person(ws, "exactly_30d"), "App Launch", thirty)
    events(person(ws, "inside_30d"), "App Launch", thirty - second)
    events(person(ws, "outside_30d"), "App Launch", thirty + second)
    events(person(ws, "exactly_7d"), "App Launch", timedelta(days=7))
    events(person(ws, "inside_7d"), "App Launch", timedelta(days=7) - second)
    events(person(ws, "now"), "App Launch", timedelta(0))
    events(person(ws, "future"), "App Launch", -timedelta(hours=1))
    return ws


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        (
            {"op": "any_time"},
            {
                "exactly_30d",
                "inside_30d",
                "outside_30d",
                "exactly_7d",
                "inside_7d",
                "now",
                "future",
            },
        ),  # fmt: skip
        # occurred_at >= now - 30 days
        (
            {"op": "within_last", "amount": 30, "unit": "days"},
            {"exactly_30d", "inside_30d", "exactly_7d", "inside_7d", "now", "future"},
        ),  # fmt: skip
        # occurred_at < now - 30 days
        ({"op": "before_last", "amount": 30, "unit": "days"}, {"outside_30d"}),
        # now - 30 days <= occurred_at <= now - 7 days
        (
            {"op": "between_last", "from": 7, "to": 30, "unit": "days"},
            {"exactly_30d", "inside_30d", "exactly_7d"},
        ),  # fmt: skip
        ({"op": "within_last", "amount": 60, "unit": "minutes"}, {"now", "future"}),
        (
            {"op": "within_last", "amount": 7 * 24, "unit": "hours"},
            {"exactly_7d", "inside_7d", "now", "future"},
        ),  # fmt: skip
        ({"op": "between_last", "from": 0, "to": 0, "unit": "hours"}, {"now"}),
    ],
)
def test_event_window_edges(edges, time, expected):
    assert matching(edges, {"event": "App Launch", "time": time}) == expected


@pytest.fixture
def purchases(ws):
    buyer = person(ws, "buyer")
    events(buyer, "Purchase", timedelta(days=1), amount=10, currency="EUR", items=["Book", "pen"])
    events(buyer, "Purchase", timedelta(days=2), amount=9, currency="usd", day="2026-11-20")
    text_amount = person(ws, "text_amount")
    events(text_amount, "Purchase", timedelta(days=1), amount="10", **{"2024": True})
    events(person(ws, "bare"), "Purchase", timedelta(days=1))
    return ws


def bought(*where, count=None):
    rule = {"event": "Purchase", "where": list(where)}
    if count:
        rule["count"] = count
    return rule


def prop(name, op, value=None):
    rule = {"property": name, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (bought(prop("amount", "gt", 9)), {"buyer"}),  # a number, compared as one
        (bought(prop("amount", "gt", 9), count={"op": "gte", "value": 2}), set()),
        (bought(prop("amount", "gte", 9), count={"op": "gte", "value": 2}), {"buyer"}),
        (bought(prop("amount", "is", 10)), {"buyer"}),  # the text "10" is not the number 10
        (bought(prop("amount", "is", "10")), {"text_amount"}),
        (bought(prop("currency", "is", "EUR")), {"buyer"}),
        (bought(prop("currency", "starts_with", "US")), {"buyer"}),
        (bought(prop("currency", "in", ["EUR", "USD"])), {"buyer"}),
        (bought(prop("items", "contains", "book")), {"buyer"}),  # an element of a list
        (bought(prop("currency", "contains", "s")), {"buyer"}),  # a piece of a text
        (bought(prop("day", "was_within", rel(7))), {"buyer"}),
        (bought(prop("day", "is", "2026-11-20")), {"buyer"}),
        (bought(prop("2024", "is", True)), {"text_amount"}),  # a key of digits is still a key
        (bought(prop("currency", "is_empty")), {"text_amount", "bare"}),
        (bought(prop("currency", "is", "EUR"), prop("amount", "is", 9)), set()),
        (bought(prop("currency", "not_contains", "eur")), {"buyer", "text_amount", "bare"}),
        (
            {
                "event": "Purchase",
                "count": {"op": "eq", "value": 0},
                "where": [prop("currency", "is", "EUR")],
            },
            {"text_amount", "bare"},
        ),  # fmt: skip
    ],
)
def test_event_where_filters(purchases, rules, expected):
    assert matching(purchases, rules) == expected


# --- tags ------------------------------------------------------------------------------------


def test_tags(ws):
    vip = TagFactory(workspace=ws, name="VIP")
    PersonTagFactory(person=person(ws, "vip"), tag=vip)
    PersonTagFactory(person=person(ws, "other_tag"), tag=TagFactory(workspace=ws, name="Beta"))
    person(ws, "untagged")
    assert matching(ws, {"tag": "VIP", "op": "has"}) == {"vip"}
    assert matching(ws, {"tag": "vip", "op": "has"}) == {"vip"}  # names ignore case
    assert matching(ws, {"tag": "VIP", "op": "has_not"}) == {"other_tag", "untagged"}
    assert matching(ws, {"tag": "Unknown", "op": "has"}) == set()
    assert matching(ws, {"tag": "Unknown", "op": "has_not"}) == {"vip", "other_tag", "untagged"}


# --- groups ----------------------------------------------------------------------------------


def test_groups_combine(ws):
    person(ws, "london_pro", city="London", attributes={"plan": "pro"})
    person(ws, "london_free", city="London", attributes={"plan": "free"})
    person(ws, "paris_pro", city="Paris", attributes={"plan": "pro"})
    london, pro = attr("city", "is", "London"), attr("plan", "is", "pro")
    assert matching(ws, {"all": [london, pro]}) == {"london_pro"}
    assert matching(ws, {"any": [london, pro]}) == {"london_pro", "london_free", "paris_pro"}
    assert matching(ws, {"not": {"all": [london, pro]}}) == {"london_free", "paris_pro"}
    assert matching(ws, {"all": [london, {"not": pro}]}) == {"london_free"}
    assert matching(ws, {"any": [{"not": london}, {"not": {"not": pro}}]}) == {
        "london_pro",
        "paris_pro",
    }


# --- tenancy ---------------------------------------------------------------------------------


def test_another_workspaces_people_events_and_tags_never_match(ws, other_workspace):
    AttributeDefinitionFactory(workspace=other_workspace, key="plan")
    EventTypeFactory(workspace=other_workspace, name="App Launch")
    theirs = person(other_workspace, "theirs", city="London", attributes={"plan": "pro"})
    events(theirs, "App Launch", timedelta(days=1))
    PersonTagFactory(person=theirs, tag=TagFactory(workspace=other_workspace, name="VIP"))
    mine = person(ws, "mine", city="London", attributes={"plan": "pro"})
    # a row that claims another workspace must not count for one of ours
    Event.objects.create(workspace=other_workspace, person=mine, name="App Launch", occurred_at=NOW)
    other_vip = TagFactory(workspace=other_workspace, name="Gold")
    PersonTagFactory(person=mine, workspace=other_workspace, tag=other_vip)

    assert matching(ws, attr("plan", "is", "pro")) == {"mine"}
    assert matching(ws, {"event": "App Launch"}) == set()
    assert matching(ws, {"event": "App Launch", "count": {"op": "eq", "value": 0}}) == {"mine"}
    assert matching(ws, {"tag": "VIP", "op": "has"}) == set()
    assert matching(ws, {"tag": "Gold", "op": "has"}) == set()


# --- one query, errors, explanations ---------------------------------------------------------


def test_the_whole_tree_is_one_query(ws, django_assert_num_queries):
    events(person(ws, "a", city="London", attributes={"plan": "pro"}), "App Launch", timedelta(1))
    PersonTagFactory(person=person(ws, "b"), tag=TagFactory(workspace=ws, name="VIP"))
    tree = parse_rules(
        {
            "any": [
                {"all": [attr("city", "is", "London"), attr("plan", "starts_with", "p")]},
                {"event": "App Launch", "count": {"op": "gte", "value": 3}},
                {"tag": "VIP", "op": "has"},
                attr("company", "is", "Acme"),
                attr("created_at", "before", "2000-01-01"),
            ]
        }
    )
    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=NOW))
    with django_assert_num_queries(1):
        assert {p.external_id for p in people} == {"a", "b"}


def test_equality_on_a_custom_attribute_is_a_containment(ws):
    tree = parse_rules(attr("plan", "in", ["pro", "team"]))
    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=NOW))
    sql, params = people.query.sql_with_params()
    assert sql.count('"people_person"."attributes" @> ') == 2


def _matching(ws, rules):
    tree = parse_rules(rules)
    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=NOW))
    return sorted(people.values_list("external_id", flat=True))


def test_audience_membership_conditions(ws, other_workspace):
    from audiences.services import audience_add_people, audience_create

    for ext in ("a", "b"):
        Person.objects.create(workspace=ws, external_id=ext)
    theirs = Person.objects.create(workspace=other_workspace, external_id="a")
    audience = audience_create(workspace=ws, name="Newsletter", actor=Actor(system="tests"))
    audience_add_people(
        audience=audience,
        people=Person.objects.filter(workspace=ws, external_id="a"),
        actor=Actor(system="tests"),
    )
    foreign = audience_create(
        workspace=other_workspace, name="Newsletter", actor=Actor(system="tests")
    )
    audience_add_people(
        audience=foreign, people=Person.objects.filter(pk=theirs.pk), actor=Actor(system="tests")
    )
    assert _matching(ws, {"audience": "newsletter", "op": "in"}) == ["a"]
    assert _matching(ws, {"audience": "Newsletter", "op": "not_in"}) == ["b"]
    assert _matching(ws, {"audience": "No such list", "op": "in"}) == []


def test_segment_membership_conditions_by_kind(ws):
    from segments.services import segment_create, static_members_change

    for ext, city in (("a", "London"), ("b", "Paris"), ("c", "London")):
        Person.objects.create(workspace=ws, external_id=ext, city=city)
    static = segment_create(workspace=ws, name="Picked", kind="static", actor=Actor(system="tests"))
    static_members_change(
        segment=static,
        people=Person.objects.filter(workspace=ws, external_id="b"),
        add=True,
        actor=Actor(system="tests"),
    )
    snapshot = segment_create(
        workspace=ws,
        name="Londoners",
        kind="snapshot",
        rules=attr("city", "is", "London"),
        actor=Actor(system="tests"),
    )
    everyone = segment_create(
        workspace=ws, name="All", kind="everyone", actor=Actor(system="tests")
    )
    assert _matching(ws, {"segment": static.pk, "op": "in"}) == ["b"]
    assert _matching(ws, {"segment": snapshot.pk, "op": "in"}) == ["a", "c"]
    assert _matching(
        ws, {"any": [{"segment": static.pk, "op": "in"}, {"segment": snapshot.pk, "op": "in"}]}
    ) == ["a", "b", "c"]
    assert _matching(ws, {"segment": everyone.pk, "op": "not_in"}) == []
    with pytest.raises(RuleError) as caught:
        _matching(ws, {"any": [{"not": {"segment": 999999, "op": "not_in"}}]})
    assert caught.value.path == "any.0.not"


def test_compiling_checks_the_catalogue(ws, other_workspace):
    tree = parse_rules(attr("plan", "is", "pro"))
    with pytest.raises(RuleError, match="unknown attribute"):
        compile_rules(tree, workspace=other_workspace, now=NOW)


def test_now_must_be_aware(ws):
    with pytest.raises(ValueError, match="timezone-aware"):
        compile_rules(parse_rules(attr("city", "is", "x")), workspace=ws, now=datetime(2026, 1, 1))


RULES = {
    "all": [
        attr("city", "is", "London"),
        {
            "any": [
                {
                    "event": "App Launch",
                    "time": {"op": "within_last", "amount": 30, "unit": "days"},
                },
                {"not": {"tag": "VIP", "op": "has"}},
            ]
        },
    ]
}


def test_explain_rules_tells_which_conditions_hold_for_a_person(ws, other_workspace):
    someone = person(ws, "someone", city="London")
    PersonTagFactory(person=someone, tag=TagFactory(workspace=ws, name="VIP"))
    tree = parse_rules(RULES, workspace=ws)
    assert explain_rules(tree, someone, workspace=ws, now=NOW) == [
        (
            "",
            "City is London AND (App Launch at least once in the last 30 days OR NOT has tag VIP)",
            False,
        ),  # fmt: skip
        ("all.0", "City is London", True),
        ("all.1", "App Launch at least once in the last 30 days OR NOT has tag VIP", False),
        ("all.1.any.0", "App Launch at least once in the last 30 days", False),
        ("all.1.any.1", "NOT has tag VIP", False),
        ("all.1.any.1.not", "has tag VIP", True),
    ]
    stranger = person(other_workspace, "stranger")
    with pytest.raises(Person.DoesNotExist):
        explain_rules(tree, stranger, workspace=ws, now=NOW)


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        (
            {
                "all": [
                    attr("city", "is", "London"),
                    {
                        "event": "App Launch",
                        "time": {"op": "within_last", "amount": 30, "unit": "days"},
                    },
                ]
            },
            "City is London AND App Launch at least once in the last 30 days",
        ),  # fmt: skip
        (
            {"any": [attr("plan", "in", ["pro", "team"]), {"not": attr("score", "gt", 3)}]},
            "plan is one of pro, team OR NOT score is more than 3",
        ),
        (
            {
                "all": [
                    attr("birthday", "will_be_in", rel(1, "weeks")),
                    attr("created_at", "lt", "2026-01-01"),
                ]
            },
            "birthday is in 1 week AND Created at is before 2026-01-01",
        ),  # fmt: skip
        (
            {
                "event": "Purchase",
                "count": {"op": "eq", "value": 0},
                "time": {"op": "between_last", "from": 7, "to": 30, "unit": "days"},
                "where": [prop("amount", "gte", 10)],
            },
            "Purchase never between 30 and 7 days ago where amount is at least 10",
        ),  # fmt: skip
        (
            {
                "all": [
                    {"tag": "VIP", "op": "has_not"},
                    {"audience": "News", "op": "in"},
                    {"segment": 4, "op": "not_in"},
                    attr("email", "is_empty"),
                ]
            },
            "does not have tag VIP AND in audience News AND not in segment #4 AND Email is empty",
        ),  # fmt: skip
    ],
)
def test_describe_rules(rules, words):
    assert describe_rules(parse_rules(rules)) == words
