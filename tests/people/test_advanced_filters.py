"""The People page's advanced filters: groups of attribute conditions (AND inside a group,
OR between groups) compiled by the segment compiler."""

import pytest

from accounts.audit import Actor
from people.services.people import person_upsert


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


@pytest.fixture
def people(workspace):
    for ext, city, plan, ltv in [
        ("a", "London", "pro", 500),
        ("b", "London", "free", 20),
        ("c", "Paris", "enterprise", 3000),
        ("d", "Rome", "free", 0),
    ]:
        person_upsert(
            workspace=workspace,
            external_id=ext,
            data={"city": city, "attributes": {"plan": plan, "ltv": ltv}},
            actor=Actor(system="tests"),
        )


def rows(page):
    return sorted(p.external_id for p in page.context["rows"])


def test_conditions_in_a_group_all_hold(ops_client, people):
    page = ops_client.get(
        "/people/",
        {
            "c-0-0-attribute": "city",
            "c-0-0-op": "is",
            "c-0-0-value": "London",
            "c-0-1-attribute": "ltv",
            "c-0-1-op": "gte",
            "c-0-1-value": "100",
        },
    )
    assert rows(page) == ["a"]


def test_groups_are_alternatives(ops_client, people):
    page = ops_client.get(
        "/people/",
        {
            "c-0-0-attribute": "city",
            "c-0-0-op": "is",
            "c-0-0-value": "London",
            "c-0-1-attribute": "plan",
            "c-0-1-op": "is",
            "c-0-1-value": "free",
            "c-1-0-attribute": "plan",
            "c-1-0-op": "in",
            "c-1-0-value": "enterprise, pro",
            "c-1-1-attribute": "city",
            "c-1-1-op": "is_not",
            "c-1-1-value": "London",
        },
    )
    assert rows(page) == ["b", "c"]
    assert page.context["count"].value == 2


def test_builder_buttons_add_rows_and_groups(ops_client, people):
    page = ops_client.get(
        "/people/",
        {"c-0-0-attribute": "city", "c-0-0-op": "is", "c-0-0-value": "London", "builder": "or"},
    )
    groups = page.context["view"].builder_rows()
    assert [len(g) for g in groups] == [1, 1]
    page = ops_client.get(
        "/people/",
        {"c-0-0-attribute": "city", "c-0-0-op": "is", "c-0-0-value": "London", "builder": "add:0"},
    )
    assert [len(g) for g in page.context["view"].builder_rows()] == [2]
    assert rows(page) == ["a", "b"]  # the empty new row does not filter


def test_operators_fit_the_attribute_type(ops_client, people):
    page = ops_client.get("/people/", {"c-0-0-attribute": "ltv"})
    [[row]] = page.context["view"].builder_rows()
    assert [op for op, _ in row["ops"]][:4] == ["is", "is_not", "lt", "lte"]
    assert "starts_with" not in dict(row["ops"]) and row["kind"] == "number"


def test_a_value_that_does_not_fit_is_a_form_error_not_a_500(ops_client, people):
    page = ops_client.get(
        "/people/", {"c-0-0-attribute": "ltv", "c-0-0-op": "gte", "c-0-0-value": "lots"}
    )
    assert page.status_code == 200
    assert "ltv &gt;= needs a number." in page.text
    assert rows(page) == []


def test_quick_filters_and_advanced_filters_combine(ops_client, people):
    page = ops_client.get(
        "/people/",
        {"city": "London", "c-0-0-attribute": "plan", "c-0-0-op": "is_not", "c-0-0-value": "pro"},
    )
    assert rows(page) == ["b"]


@pytest.mark.parametrize(
    "params",
    [
        {"c-²-0-attribute": "city", "c-²-0-op": "is", "c-²-0-value": "London"},
        {"c-0-١-attribute": "city", "c-0-١-op": "is", "c-0-١-value": "London"},
        {f"c-{'9' * 5000}-0-attribute": "city", f"c-{'9' * 5000}-0-op": "is_empty"},
        {"builder": "add:x"},
        {"builder": "add:²"},
        {"builder": f"add:{'9' * 5000}"},
        {"builder": "remove:1"},
        {"builder": "remove:0:x"},
        {"builder": "remove:²:0"},
        {"builder": "remove:0:0:0"},
    ],
)
def test_mangled_builder_fields_are_ignored_not_a_500(ops_client, people, params):
    page = ops_client.get("/people/", params)
    assert page.status_code == 200
    assert rows(page) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("value", ["nan", "-Infinity", "1e999"])
def test_a_number_that_is_not_finite_is_a_row_error(ops_client, people, value):
    page = ops_client.get(
        "/people/", {"c-0-0-attribute": "ltv", "c-0-0-op": "gte", "c-0-0-value": value}
    )
    assert page.status_code == 200
    assert "ltv &gt;= needs a number." in page.text
    assert rows(page) == []


@pytest.mark.parametrize("amount", ["٣", "³", "-3", "9" * 40])
def test_a_relative_amount_is_ascii_digits(ops_client, people, amount):
    page = ops_client.get(
        "/people/",
        {
            "c-0-0-attribute": "created_at",
            "c-0-0-op": "was_within",
            "c-0-0-amount": amount,
            "c-0-0-unit": "days",
        },
    )
    assert page.status_code == 200
    assert "created_at was within the last needs a whole number" in page.text
    assert rows(page) == []
