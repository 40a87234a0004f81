"""segments/rules/schema.py: parsing and validating rule trees (shared/API.md "Rule tree")."""

from datetime import UTC, date, datetime

import pytest
from django.db import connection

from people.models import AttributeType, Person
from segments.rules import compile_rules, parse_rules
from segments.rules.schema import (
    MAX_DEPTH,
    MAX_NODES,
    All,
    Any,
    AttributeCondition,
    AudienceCondition,
    Count,
    EventCondition,
    Not,
    PropertyFilter,
    RelativeDate,
    RuleError,
    SegmentCondition,
    TagCondition,
    Window,
)
from tests.factories import AttributeDefinitionFactory, EventTypeFactory, PersonFactory

CITY = {"attribute": "city", "op": "is", "value": "London"}


def error_of(payload, **kwargs) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse_rules(payload, **kwargs)
    return caught.value


def test_a_full_tree_parses_into_typed_nodes():
    tree = parse_rules(
        {
            "all": [
                CITY,
                {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
                {
                    "attribute": "birthday",
                    "op": "will_be_in",
                    "value": {"amount": 3, "unit": "days"},
                },
                {"attribute": "signed_up", "op": "before", "value": "2026-01-31"},
                {"attribute": "score", "op": "gte", "value": 10},
                {"attribute": "nickname", "op": "is_empty"},
                {
                    "any": [
                        {
                            "event": "App Launch",
                            "count": {"op": "gte", "value": 3},
                            "time": {"op": "between_last", "from": 7, "to": 30, "unit": "days"},
                            "where": [{"property": "os", "op": "is", "value": "ios"}],
                        },
                        {"not": {"tag": "VIP", "op": "has"}},
                    ]
                },
                {"audience": "Newsletter", "op": "not_in"},
                {"segment": 12, "op": "in"},
            ]
        }
    )
    assert tree == All(
        (
            AttributeCondition("city", "is", "London", "all.0"),
            AttributeCondition("plan", "in", ("pro", "team"), "all.1"),
            AttributeCondition("birthday", "will_be_in", RelativeDate(3, "days"), "all.2"),
            AttributeCondition("signed_up", "before", date(2026, 1, 31), "all.3"),
            AttributeCondition("score", "gte", 10, "all.4"),
            AttributeCondition("nickname", "is_empty", None, "all.5"),
            Any(
                (
                    EventCondition(
                        "App Launch",
                        Count("gte", 3),
                        Window("between_last", "days", start=7, end=30),
                        (
                            PropertyFilter(
                                "os", "is", "ios", AttributeType.STRING, "all.6.any.0.where.0"
                            ),
                        ),
                        "all.6.any.0",
                    ),
                    Not(TagCondition("VIP", "has", "all.6.any.1.not"), "all.6.any.1"),
                ),
                "all.6",
            ),
            AudienceCondition("Newsletter", "not_in", "all.7"),
            SegmentCondition(12, "in", "all.8"),
        ),
        "",
    )


def test_event_defaults_are_at_least_once_at_any_time():
    tree = parse_rules({"event": "App Launch"})
    assert tree == EventCondition("App Launch", Count("gte", 1), Window("any_time"), (), "")


def test_the_nodes_are_frozen():
    tree = parse_rules(CITY)
    with pytest.raises(AttributeError):
        tree.value = "Paris"


def test_rule_error_names_its_path():
    error = error_of({"all": [CITY, CITY, {"attribute": "city", "op": "in", "value": "x"}]})
    assert (error.path, str(error)) == ("all.2.value", f"all.2.value: {error.message}")
    assert error.loc == ("all", 2, "value")


@pytest.mark.parametrize(
    ("payload", "path", "message"),
    [
        # shapes of nodes
        ([CITY], "", "expected a group"),
        ({"all": "x"}, "all", "expected a list"),
        ({"all": []}, "all", "at least one"),
        ({"all": [CITY], "any": [CITY]}, "", "not all and any"),
        ({"all": [{"city": "London"}]}, "all.0", "expected a group"),
        ({"all": [CITY], "name": "x"}, "name", "unknown key"),
        ({"all": [{**CITY, "negate": True}]}, "all.0.negate", "unknown key"),
        ({"attribute": "city", "event": "x", "op": "is"}, "", "one group or one condition"),
        ({"not": [CITY]}, "not", "expected a group"),
        # attribute names and operators
        ({"attribute": "", "op": "is", "value": "x"}, "attribute", "non-empty name"),
        ({"attribute": 3, "op": "is", "value": "x"}, "attribute", "non-empty name"),
        ({"attribute": "1st", "op": "is", "value": "x"}, "attribute", "not a valid attribute"),
        ({"attribute": "a" * 101, "op": "is", "value": "x"}, "attribute", "at most 100"),
        ({"attribute": "city", "value": "x"}, "op", "is required"),
        ({"attribute": "city", "op": "equals", "value": "x"}, "op", "unknown op"),
        ({"attribute": "city", "op": None, "value": "x"}, "op", "unknown op"),
        # values per operator
        ({"attribute": "city", "op": "is"}, "value", "is required"),
        ({"attribute": "city", "op": "is", "value": None}, "value", "expected a text"),
        ({"attribute": "city", "op": "is", "value": ["x"]}, "value", "expected a text"),
        ({"attribute": "city", "op": "is", "value": ""}, "value", "use is_empty"),
        ({"attribute": "score", "op": "is", "value": {"a": 1}}, "value", "expected a text"),
        ({"attribute": "score", "op": "is", "value": float("nan")}, "value", "expected a text"),
        ({"attribute": "city", "op": "in", "value": "x"}, "value", "expected a list"),
        ({"attribute": "city", "op": "in", "value": []}, "value", "expected a list"),
        ({"attribute": "city", "op": "not_in", "value": ["x", {}]}, "value.1", "expected a text"),
        ({"attribute": "city", "op": "in", "value": ["x"] * 1001}, "value", "at most 1000"),
        ({"attribute": "city", "op": "is_empty", "value": "x"}, "value", "takes no value"),
        ({"attribute": "score", "op": "gt", "value": "ten"}, "value", "number or a date"),
        ({"attribute": "score", "op": "lt", "value": True}, "value", "number or a date"),
        ({"attribute": "day", "op": "lte", "value": "2026-02-30"}, "value", "number or a date"),
        ({"attribute": "city", "op": "starts_with", "value": 5}, "value", "non-empty text"),
        ({"attribute": "city", "op": "contains", "value": ""}, "value", "non-empty text"),
        ({"attribute": "day", "op": "before", "value": "2026/01/31"}, "value", "YYYY-MM-DD"),
        ({"attribute": "day", "op": "after", "value": "2026-13-01"}, "value", "YYYY-MM-DD"),
        ({"attribute": "day", "op": "since", "value": 20260101}, "value", "YYYY-MM-DD"),
        ({"attribute": "day", "op": "was", "value": 3}, "value", "expected {"),
        ({"attribute": "day", "op": "was", "value": {"amount": 3}}, "value.unit", "is required"),
        (
            {"attribute": "day", "op": "was", "value": {"amount": 3, "unit": "years"}},
            "value.unit",
            "unknown unit",
        ),
        (
            {"attribute": "day", "op": "was", "value": {"amount": -1, "unit": "days"}},
            "value.amount",
            "0 or more",
        ),
        (
            {"attribute": "day", "op": "was", "value": {"amount": 1.5, "unit": "days"}},
            "value.amount",
            "whole number",
        ),
        (
            {"attribute": "day", "op": "was", "value": {"amount": True, "unit": "days"}},
            "value.amount",
            "whole number",
        ),
        (
            {"attribute": "day", "op": "was", "value": {"amount": 10**9, "unit": "months"}},
            "value.amount",
            "at most 1200",
        ),
        (
            {"attribute": "day", "op": "was", "value": {"amount": 1, "unit": "days", "ago": 1}},
            "value.ago",
            "unknown key",
        ),
        # built-in attributes have fixed types
        ({"attribute": "city", "op": "gt", "value": 5}, "op", "does not apply"),
        ({"attribute": "city", "op": "was", "value": {"amount": 1, "unit": "days"}}, "op", "apply"),
        ({"attribute": "city", "op": "is", "value": 5}, "value", "expected a text"),
        ({"attribute": "created_at", "op": "starts_with", "value": "2026"}, "op", "apply"),
        ({"attribute": "created_at", "op": "is", "value": "yesterday"}, "value", "YYYY-MM-DD"),
        ({"attribute": "created_at", "op": "gt", "value": 5}, "value", "expected a date"),
        # events
        ({"event": ""}, "event", "non-empty name"),
        ({"event": "x", "count": 3}, "count", "expected {"),
        ({"event": "x", "count": {"op": "ge", "value": 1}}, "count.op", "unknown op"),
        ({"event": "x", "count": {"op": "eq"}}, "count.value", "is required"),
        ({"event": "x", "count": {"op": "eq", "value": -1}}, "count.value", "0 or more"),
        ({"event": "x", "count": {"op": "eq", "value": 1.5}}, "count.value", "whole number"),
        ({"event": "x", "count": {"op": "eq", "value": 10**12}}, "count.value", "at most"),
        ({"event": "x", "count": {"op": "eq", "value": 1, "of": 2}}, "count.of", "unknown key"),
        ({"event": "x", "time": "today"}, "time", "expected {"),
        ({"event": "x", "time": {"op": "recently"}}, "time.op", "unknown op"),
        ({"event": "x", "time": {"op": "any_time", "amount": 1}}, "time.amount", "unknown key"),
        (
            {"event": "x", "time": {"op": "within_last", "amount": 30}},
            "time.unit",
            "is required",
        ),
        (
            {"event": "x", "time": {"op": "within_last", "amount": 2, "unit": "weeks"}},
            "time.unit",
            "unknown unit",
        ),
        (
            {"event": "x", "time": {"op": "before_last", "unit": "days"}},
            "time.amount",
            "is required",
        ),
        (
            {"event": "x", "time": {"op": "within_last", "from": 1, "to": 2, "unit": "days"}},
            "time.from",
            "unknown key",
        ),
        (
            {"event": "x", "time": {"op": "between_last", "from": 30, "to": 7, "unit": "days"}},
            "time.from",
            "not be greater",
        ),
        (
            {"event": "x", "time": {"op": "between_last", "from": 1, "unit": "hours"}},
            "time.to",
            "is required",
        ),
        ({"event": "x", "where": {"property": "os"}}, "where", "expected a list"),
        ({"event": "x", "where": ["os"]}, "where.0", "expected {"),
        (
            {"event": "x", "where": [{"op": "is", "value": "ios"}]},
            "where.0.property",
            "is required",
        ),
        (
            {"event": "x", "where": [{"property": "os", "op": "like", "value": "ios"}]},
            "where.0.op",
            "unknown op",
        ),
        (
            {"event": "x", "where": [{"property": "os", "op": "in", "value": [1, "ios"]}]},
            "where.0.value",
            "one type",
        ),
        (
            {"event": "x", "where": [{"property": "n", "op": "gt", "value": "many"}]},
            "where.0.value",
            "number or a date",
        ),
        (
            {"event": "x", "where": [{"property": "n", "op": "is_empty", "value": 1}]},
            "where.0.value",
            "takes no value",
        ),
        # memberships
        ({"tag": "VIP"}, "op", "is required"),
        ({"tag": "VIP", "op": "in"}, "op", "unknown op"),
        ({"tag": ["VIP"], "op": "has"}, "tag", "non-empty name"),
        ({"audience": "Newsletter", "op": "has"}, "op", "unknown op"),
        ({"audience": "", "op": "in"}, "audience", "non-empty name"),
        ({"segment": "12", "op": "in"}, "segment", "segment id"),
        ({"segment": 0, "op": "in"}, "segment", "segment id"),
        ({"segment": True, "op": "in"}, "segment", "segment id"),
        ({"segment": 12, "op": "has"}, "op", "unknown op"),
    ],
)
def test_invalid_trees_name_the_bad_node(payload, path, message):
    error = error_of(payload)
    assert error.path == path
    assert message in error.message


def test_errors_deep_in_the_tree_carry_the_full_path():
    payload = {
        "any": [
            {
                "not": {
                    "event": "App Launch",
                    "time": {"op": "within_last", "amount": -1, "unit": "days"},
                }
            }
        ]
    }
    assert error_of(payload).path == "any.0.not.time.amount"
    payload = {"all": [CITY, {"event": "x", "where": [{"property": "p", "op": "before"}]}]}
    assert error_of(payload).path == "all.1.where.0.value"


def nested(levels: int) -> dict:
    tree = CITY
    for _ in range(levels):
        tree = {"all": [tree]}
    return tree


def test_groups_nest_at_most_twenty_deep():
    assert parse_rules(nested(MAX_DEPTH))
    error = error_of(nested(MAX_DEPTH + 1))
    assert "20 levels" in error.message
    assert error.path == ".".join(["all.0"] * MAX_DEPTH)


@pytest.mark.parametrize("levels", [100, 5000])
def test_a_very_deep_tree_is_a_rule_error_not_a_recursion_error(levels):
    assert "levels deep" in error_of(nested(levels)).message


def test_deeply_nested_values_are_a_rule_error_not_a_recursion_error():
    value = "x"
    for _ in range(5000):
        value = [value]
    error = error_of({"attribute": "city", "op": "in", "value": value})
    assert error.message == "values nest too deeply"


def test_a_tree_holds_at_most_500_nodes():
    assert parse_rules({"all": [CITY] * (MAX_NODES - 1)})
    assert "at most 500" in error_of({"all": [CITY] * MAX_NODES}).message


def test_a_one_megabyte_tree_is_refused():
    big_value = {"attribute": "city", "op": "is", "value": "x" * 1024 * 1024}
    assert "larger than 64 KB" in error_of(big_value).message
    wide = {"any": [{"attribute": "city", "op": "in", "value": ["y" * 100] * 1000}] * 12}
    assert "larger than 64 KB" in error_of(wide).message


def test_a_payload_that_is_not_json_is_refused():
    assert "must be JSON" in error_of({"attribute": "city", "op": "is", "value": {1, 2}}).message


# --- against the workspace's catalogues ----------------------------------------------------


@pytest.fixture
def catalogue(workspace):
    for key, type_ in [
        ("plan", AttributeType.STRING),
        ("score", AttributeType.NUMBER),
        ("vip", AttributeType.BOOLEAN),
        ("birthday", AttributeType.DATE),
        ("last_seen", AttributeType.DATETIME),
        ("interests", AttributeType.LIST),
    ]:
        AttributeDefinitionFactory(workspace=workspace, key=key, type=type_)
    EventTypeFactory(workspace=workspace, name="App Launch")
    return workspace


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ({"attribute": "nickname", "op": "is", "value": "x"}, "all.1.attribute", "unknown attr"),
        ({"attribute": "score", "op": "is", "value": "10"}, "all.1.value", "expected a number"),
        ({"attribute": "score", "op": "in", "value": [1, "2"]}, "all.1.value.1", "a number"),
        ({"attribute": "score", "op": "starts_with", "value": "1"}, "all.1.op", "does not apply"),
        ({"attribute": "score", "op": "before", "value": "2026-01-01"}, "all.1.op", "apply"),
        ({"attribute": "score", "op": "gt", "value": "2026-01-01"}, "all.1.value", "a number"),
        ({"attribute": "plan", "op": "gt", "value": 3}, "all.1.op", "does not apply"),
        ({"attribute": "plan", "op": "is", "value": 3}, "all.1.value", "expected a text"),
        (
            {"attribute": "plan", "op": "was", "value": {"amount": 1, "unit": "days"}},
            "all.1.op",
            "holds text",
        ),
        ({"attribute": "vip", "op": "is", "value": "yes"}, "all.1.value", "true or false"),
        ({"attribute": "vip", "op": "gte", "value": 1}, "all.1.op", "does not apply"),
        ({"attribute": "birthday", "op": "lt", "value": 5}, "all.1.value", "expected a date"),
        ({"attribute": "birthday", "op": "is", "value": "May 1"}, "all.1.value", "YYYY-MM-DD"),
        ({"attribute": "last_seen", "op": "contains", "value": "2026"}, "all.1.op", "apply"),
        ({"attribute": "interests", "op": "is", "value": "golf"}, "all.1.op", "does not apply"),
        ({"attribute": "interests", "op": "starts_with", "value": "g"}, "all.1.op", "lists"),
        ({"event": "Purchase"}, "all.1.event", "unknown event"),
        ({"event": "app launch"}, "all.1.event", "unknown event"),
    ],
)
def test_with_a_workspace_the_catalogues_are_checked(catalogue, condition, path, message):
    error = error_of({"all": [CITY, condition]}, workspace=catalogue)
    assert error.path == path
    assert message in error.message


@pytest.mark.parametrize(
    "condition",
    [
        {"attribute": "score", "op": "gt", "value": 9.5},
        {"attribute": "score", "op": "in", "value": [1, 2.5]},
        {"attribute": "vip", "op": "is_not", "value": False},
        {"attribute": "birthday", "op": "was_within", "value": {"amount": 1, "unit": "months"}},
        {"attribute": "last_seen", "op": "gte", "value": "2026-01-01"},
        {"attribute": "last_seen", "op": "in", "value": ["2026-01-01", "2026-01-02"]},
        {"attribute": "interests", "op": "not_contains", "value": "golf"},
        {"attribute": "interests", "op": "is_empty"},
        {"event": "App Launch", "count": {"op": "eq", "value": 0}},
        {"tag": "A tag nobody has", "op": "has_not"},
    ],
)
def test_with_a_workspace_valid_conditions_pass(catalogue, condition):
    assert parse_rules({"all": [CITY, condition]}, workspace=catalogue)


def test_without_a_workspace_custom_attributes_and_events_are_not_looked_up(catalogue):
    assert parse_rules({"all": [{"attribute": "nickname", "op": "gt", "value": 1}, {"event": "?"}]})


def test_another_workspaces_catalogue_does_not_count(catalogue, other_workspace):
    error = error_of({"attribute": "plan", "op": "is", "value": "pro"}, workspace=other_workspace)
    assert error.message == "unknown attribute “plan”"
    error = error_of({"event": "App Launch"}, workspace=other_workspace)
    assert error.message == "unknown event “App Launch”"


# --- values that look like SQL are only values ---------------------------------------------

EVIL = "'; DROP TABLE people_person; --"


def test_sql_looking_values_are_just_strings(catalogue):
    workspace = catalogue
    PersonFactory(workspace=workspace, external_id="evil", city=EVIL, attributes={"plan": EVIL})
    PersonFactory(workspace=workspace, external_id="plain", city="London")
    EventTypeFactory(workspace=workspace, name=EVIL)
    payload = {
        "any": [
            {"attribute": "city", "op": "is", "value": EVIL},
            {"attribute": "plan", "op": "starts_with", "value": EVIL},
            {"attribute": "first_name", "op": "in", "value": [EVIL, '") OR 1=1 --']},
            {"tag": EVIL, "op": "has"},
            {"event": EVIL, "where": [{"property": EVIL, "op": "contains", "value": EVIL}]},
        ]
    }
    tree = parse_rules(payload, workspace=workspace)
    people = Person.objects.for_workspace(workspace).filter(
        compile_rules(tree, workspace=workspace, now=datetime(2026, 11, 25, tzinfo=UTC))
    )
    sql, params = people.query.sql_with_params()
    assert "DROP" not in sql
    assert EVIL in params

    assert list(people.values_list("external_id", flat=True)) == ["evil"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('people_person') IS NOT NULL")
        assert cursor.fetchone() == (True,)
    assert Person.objects.for_workspace(workspace).count() == 2
