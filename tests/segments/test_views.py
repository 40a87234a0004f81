"""Segment pages: the builder (flat fields -> rule tree, errors by row, live count), saving
each kind, the list, a segment's page (words, members, history, into an audience, why in
or out), static lists from the People page, the profile's explanations, roles, tenancy."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from accounts.audit import Actor
from accounts.models import Role
from audiences.models import TargetAudience
from audiences.services import audience_create
from people.models import Person
from people.selectors import Counted
from people.services.attributes import attribute_declare
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from people.services.tags import tags_assign
from segments.explain import segment_explanations
from segments.forms import MAX_NODES, RuleBuilder, make_catalogue
from segments.models import RefreshStatus, Segment, SegmentKind, SegmentMember, SegmentRefresh
from segments.selectors import segment_people
from segments.services import segment_create, segment_refresh, static_members_change
from segments.tasks import segment_refresh_task
from tests.factories import TagFactory

LONDON = {"attribute": "city", "op": "is", "value": "London"}
ACTIVE = {
    "event": "App Launch",
    "count": {"op": "gte", "value": 1},
    "time": {"op": "within_last", "amount": 30, "unit": "days"},
}


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def people(workspace):
    """a, b in London (a launched the app 3 days ago, b 45 days ago), c in Paris (yesterday)."""
    attribute_declare(
        workspace=workspace,
        key="ltv",
        type="number",
        label="Lifetime value",
        actor=Actor(system="tests"),
    )
    attribute_declare(workspace=workspace, key="birthday", type="date", actor=Actor(system="tests"))
    attribute_declare(workspace=workspace, key="vip", type="boolean", actor=Actor(system="tests"))
    made = {}
    for ext, city, ltv in [("a", "London", 500), ("b", "London", 20), ("c", "Paris", 3000)]:
        made[ext], _ = person_upsert(
            workspace=workspace,
            external_id=ext,
            data={"city": city, "first_name": ext.upper(), "attributes": {"ltv": ltv}},
            actor=Actor(system="tests"),
        )
    now = timezone.now()
    event_ingest_batch(
        workspace=workspace,
        items=[
            {"person": "a", "name": "App Launch", "occurred_at": now - timedelta(days=3)},
            {"person": "b", "name": "App Launch", "occurred_at": now - timedelta(days=45)},
            {
                "person": "c",
                "name": "Purchase",
                "occurred_at": now - timedelta(days=1),
                "properties": {"amount": 40, "plan": "007"},
            },
        ],
        actor=Actor(system="tests"),
    )
    return made


def catalogue_for(workspace):
    from segments.views import _catalogue

    return _catalogue(workspace)


def tree_of(workspace, data, *, strict=True):
    builder = RuleBuilder.from_post(data, catalogue_for(workspace))
    tree = builder.tree(strict=strict)
    return tree, builder


def ext_ids(people):
    return sorted(p.external_id for p in people)


# --- The builder: posted fields -> tree --------------------------------------------------------


def test_nested_groups_and_every_condition_type_become_the_api_tree(workspace, people):
    audience_create(workspace=workspace, name="Newsletter", actor=Actor(system="tests"))
    other = segment_create(
        workspace=workspace, name="Other", kind="static", actor=Actor(system="tests")
    )
    data = {
        "n-0-type": "group",
        "n-0-match": "all",
        "n-0.0-type": "attribute",
        "n-0.0-attribute": "city",
        "n-0.0-op": "is",
        "n-0.0-value": "London",
        "n-0.1-type": "group",
        "n-0.1-match": "any",
        "n-0.1.0-type": "event",
        "n-0.1.0-event": "App Launch",
        "n-0.1.0-count_op": "gte",
        "n-0.1.0-count": "2",
        "n-0.1.0-time_op": "between_last",
        "n-0.1.0-amount": "1",
        "n-0.1.0-to": "7",
        "n-0.1.0-unit": "days",
        "n-0.1.0-w0_prop": "plan",
        "n-0.1.0-w0_op": "is",
        "n-0.1.0-w0_value": '"007"',
        "n-0.1.0-w1_prop": "amount",
        "n-0.1.0-w1_op": "gte",
        "n-0.1.0-w1_value": "10.5",
        "n-0.1.1-type": "group",
        "n-0.1.1-match": "none",
        "n-0.1.1.0-type": "tag",
        "n-0.1.1.0-tag": "VIP",
        "n-0.1.1.0-tag_op": "has_not",
        "n-0.1.1.1-type": "audience",
        "n-0.1.1.1-audience": "Newsletter",
        "n-0.1.1.1-member_op": "in",
        "n-0.2-type": "segment",
        "n-0.2-segment": str(other.pk),
        "n-0.2-member_op": "not_in",
        "n-0.3-type": "attribute",
        "n-0.3-attribute": "ltv",
        "n-0.3-op": "in",
        "n-0.3-value": "20, 500",
        "n-0.4-type": "attribute",
        "n-0.4-attribute": "birthday",
        "n-0.4-op": "was_within",
        "n-0.4-amount": "2",
        "n-0.4-unit": "weeks",
        "n-0.5-type": "attribute",
        "n-0.5-attribute": "vip",
        "n-0.5-op": "is_empty",
        "n-0.6-type": "attribute",
        "n-0.6-attribute": "birthday",
        "n-0.6-op": "before",
        "n-0.6-value": "2000-01-31",
        "n-0.7-type": "event",
        "n-0.7-event": "Purchase",
        "n-0.7-time_op": "within_last",
        "n-0.7-amount": "12",
        "n-0.7-unit": "hours",
    }
    tree, builder = tree_of(workspace, data)
    assert not builder.has_errors, builder.first_error()
    assert tree == {
        "all": [
            LONDON,
            {
                "any": [
                    {
                        "event": "App Launch",
                        "count": {"op": "gte", "value": 2},
                        "time": {"op": "between_last", "unit": "days", "from": 1, "to": 7},
                        "where": [
                            {"property": "plan", "op": "is", "value": "007"},
                            {"property": "amount", "op": "gte", "value": 10.5},
                        ],
                    },
                    {
                        "not": {
                            "any": [
                                {"tag": "VIP", "op": "has_not"},
                                {"audience": "Newsletter", "op": "in"},
                            ]
                        }
                    },
                ]
            },
            {"segment": other.pk, "op": "not_in"},
            {"attribute": "ltv", "op": "in", "value": [20, 500]},
            {"attribute": "birthday", "op": "was_within", "value": {"amount": 2, "unit": "weeks"}},
            {"attribute": "vip", "op": "is_empty"},
            {"attribute": "birthday", "op": "before", "value": "2000-01-31"},
            {
                "event": "Purchase",
                "count": {"op": "gte", "value": 1},
                "time": {"op": "within_last", "unit": "hours", "amount": 12},
            },
        ]
    }
    # the stored tree shows in the builder as the same rows: a round trip changes nothing
    again = RuleBuilder.from_rules(tree, catalogue_for(workspace))
    fields = {
        f"n-{node.id}-{name}": value
        for node in again.root.walk()
        for name, value in node.fields.items()
    }
    assert tree_of(workspace, fields)[0] == tree


def test_one_condition_is_the_tree_and_unfinished_rows_are_left_out_while_editing(
    workspace, people
):
    data = {
        "n-0.0-attribute": "city",
        "n-0.0-op": "is",
        "n-0.0-value": "London",
        "n-0.1-type": "attribute",
        "n-0.1-attribute": "ltv",
        "n-0.1-op": "gte",  # no value yet
        "n-0.2-type": "event",  # no event picked
    }
    tree, builder = tree_of(workspace, data, strict=False)
    assert tree == LONDON and not builder.has_errors
    tree, builder = tree_of(workspace, data, strict=True)
    assert tree is None
    assert [n.id for n in builder.errors] == ["0.1"]
    assert "needs a value" in builder.errors[0].error


def test_builder_buttons_add_conditions_groups_and_remove_them(workspace, people):
    builder = RuleBuilder.from_post({"n-0.0-attribute": "city"}, catalogue_for(workspace))
    builder.apply("group:0")
    builder.apply("add:0.1")
    builder.apply("group:0.1")
    assert [n.id for n in builder.root.walk()] == [
        "0", "0.0", "0.1", "0.1.0", "0.1.1", "0.1.2", "0.1.2.0",
    ]  # fmt: skip
    builder.apply("remove:0.1.0")
    assert [n.id for n in builder.root.walk()] == ["0", "0.0", "0.1", "0.1.0", "0.1.1", "0.1.1.0"]
    builder.apply("remove:0")  # the root stays
    builder.apply("remove:9.9")  # a stale id changes nothing
    builder.apply("remove:0.1")
    assert [n.id for n in builder.root.walk()] == ["0", "0.0"]
    assert builder.root.children[0].fields["attribute"] == "city"


def test_event_property_filters_are_added_and_removed(workspace, people):
    builder = RuleBuilder.from_post(
        {"n-0.0-type": "event", "n-0.0-event": "Purchase"}, catalogue_for(workspace)
    )
    builder.apply("where:0.0")
    builder.apply("where:0.0")
    node = builder.root.children[0]
    node.fields |= {"w0_prop": "plan", "w0_value": "pro", "w1_prop": "amount", "w1_op": "gt"}
    node.fields["w1_value"] = "5"
    builder.apply("unwhere:0.0:0")
    assert builder.tree()["where"] == [{"property": "amount", "op": "gt", "value": 5}]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"attribute": "ltv", "op": "gte", "value": "lots"}, "needs a number"),
        ({"attribute": "ltv", "op": "in", "value": "1, two"}, "needs a number"),
        ({"attribute": "birthday", "op": "before", "value": "31/01/2000"}, "needs a date"),
        ({"attribute": "birthday", "op": "was", "amount": "-3", "unit": "days"}, "whole number"),
        ({"attribute": "birthday", "op": "was", "amount": "3", "unit": "years"}, "days, weeks"),
        ({"attribute": "vip", "op": "is", "value": "maybe"}, "yes or no"),
        ({"attribute": "city", "op": "lt", "value": "x"}, "does not apply"),
        ({"attribute": "shoe_size", "op": "is", "value": "42"}, "not an attribute"),
        ({"type": "event", "event": "App Launch", "count": "many"}, "whole number"),
        ({"type": "event", "event": "App Launch", "count_op": "about"}, "how many times"),
        (
            {"type": "event", "event": "App Launch", "time_op": "between_last", "amount": "9"}
            | {"to": "2"},
            "must not be more",
        ),
        ({"type": "segment", "segment": "abc"}, "Choose a segment"),
        ({"type": "tag", "tag": "VIP", "tag_op": "maybe"}, "has or does not have"),
    ],
)
def test_a_bad_value_is_an_error_next_to_its_row(marketer_client, workspace, people, row, message):
    data = {"name": "Bad", "kind": "snapshot", "n-0.0-type": "attribute", "n-0.1-type": "attribute"}
    data |= {"n-0.0-attribute": "city", "n-0.0-op": "is", "n-0.0-value": "London"}
    data |= {f"n-0.1-{k}": v for k, v in row.items()}
    page = marketer_client.post("/segments/new/", data)
    assert page.status_code == 200
    bad = page.context["builder"].root.children[1]
    assert message in bad.error, bad.error
    assert page.context["builder"].root.children[0].error == ""
    assert (
        f'id="row-error-0-1" class="invalid-feedback d-block">{escape(bad.error)}'
        in page.content.decode()
    )
    assert not Segment.objects.for_workspace(workspace).filter(name="Bad").exists()


def test_a_rule_error_from_the_rules_package_is_shown_on_its_row(marketer_client, people):
    page = marketer_client.post(
        "/segments/new/",
        {
            "name": "Ghost event",
            "kind": "snapshot",
            "n-0.0-attribute": "city",
            "n-0.0-op": "is",
            "n-0.0-value": "London",
            "n-0.1-type": "group",
            "n-0.1-match": "any",
            "n-0.1.0-type": "tag",
            "n-0.1.0-tag": "VIP",
            "n-0.1.1-type": "event",
            "n-0.1.1-event": "Never Sent",
        },
    )
    builder = page.context["builder"]
    assert builder.find("0.1.1").error == "Unknown event “Never Sent”"
    assert [n.id for n in builder.errors] == ["0.1.1"]


def test_a_hundred_level_tree_or_a_huge_one_is_refused_without_a_500(marketer_client, people):
    deep = ".".join(["0"] * 101)
    page = marketer_client.post(
        "/segments/new/",
        {"name": "Deep", "kind": "snapshot", f"n-{deep}-attribute": "city", f"n-{deep}-op": "is"},
    )
    assert page.status_code == 200
    assert "nest at most" in page.context["builder"].error
    huge = {"name": "Huge", "kind": "snapshot"}
    for i in range(MAX_NODES + 50):
        huge[f"n-0.{i}-attribute"] = "city"
    page = marketer_client.post("/segments/new/", huge)
    assert page.status_code == 200
    assert f"at most {MAX_NODES}" in page.context["builder"].error
    count = marketer_client.post("/segments/preview/", huge)
    assert count.status_code == 200 and f"at most {MAX_NODES}" in count.content.decode()
    # past Django's limit on posted fields: a 400, still not a 500
    flood = {f"n-0.{i}-{f}": "x" for i in range(400) for f in ("attribute", "op", "value")}
    assert marketer_client.post("/segments/new/", flood).status_code == 400
    assert not Segment.objects.filter(name__in=["Deep", "Huge"]).exists()


def test_sql_looking_values_are_only_values(marketer_client, workspace, people):
    evil = "London'; DROP TABLE people_person; --"
    page = marketer_client.post(
        "/segments/new/",
        {
            "name": "x'); DELETE FROM segments_segment; --",
            "kind": "snapshot",
            "n-0.0-attribute": "city",
            "n-0.0-op": "in",
            "n-0.0-value": f"{evil}, London",
            "n-0.1-type": "tag",
            "n-0.1-tag": "' OR 1=1 --",
            "n-0.1-tag_op": "has_not",
        },
    )
    segment = Segment.objects.for_workspace(workspace).get(name__startswith="x')")
    assert page.status_code == 302
    assert segment.rules["all"][0]["value"] == [evil, "London"]
    assert ext_ids(segment_people(segment=segment, now=timezone.now())) == ["a", "b"]
    assert Person.objects.for_workspace(workspace).count() == 3


# --- The live count --------------------------------------------------------------------------


def test_live_count_shows_count_words_and_a_sample_linking_to_profiles(marketer_client, people):
    page = marketer_client.post(
        "/segments/preview/",
        {
            "n-0.0-attribute": "city",
            "n-0.0-op": "is",
            "n-0.0-value": "London",
            "n-0.1-type": "event",
            "n-0.1-event": "App Launch",
            "n-0.1-time_op": "within_last",
            "n-0.1-amount": "30",
            "n-0.1-unit": "days",
        },
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["count"] == Counted(1, True)
    assert 'id="live-count">1</div>' in html and "estimate" not in html
    assert "City is London AND App Launch at least once in the last 30 days" in html
    assert f'href="/people/{people["a"].pk}/"' in html
    assert f'href="/people/{people["b"].pk}/"' not in html
    assert 'id="row-error-0-1" class="invalid-feedback d-block" hx-swap-oob="true"></div>' in html


def test_a_half_filled_condition_is_marked_and_the_count_says_it_waits_for_it(
    marketer_client, people
):
    page = marketer_client.post(
        "/segments/preview/",
        {
            "n-0.0-attribute": "city",
            "n-0.0-op": "is",
            "n-0.0-value": "London",
            "n-0.1-type": "event",
            "n-0.1-event": "App Launch",
            "n-0.1-time_op": "within_last",
            "n-0.1-unit": "days",  # the amount is not typed yet
        },
    )
    html = page.content.decode()
    assert page.context["count"] == Counted(2, True)  # the Londoners, said to be partial
    assert 'id="count-waiting"' in html and "Not counting 1 incomplete condition yet" in html
    assert "condition 2: " in html
    assert 'id="row-error-0-1" class="small text-warning-emphasis" data-unfinished' in html
    assert "Incomplete: " in html
    # saving refuses it, at the row
    saved = marketer_client.post(
        "/segments/new/",
        {"name": "Half", "kind": "snapshot", "n-0.0-attribute": "city", "n-0.0-op": "is",
         "n-0.0-value": "London", "n-0.1-type": "event", "n-0.1-event": "App Launch",
         "n-0.1-time_op": "within_last", "n-0.1-unit": "days"},
    )  # fmt: skip
    assert saved.status_code == 200
    assert 'id="row-error-0-1" class="invalid-feedback d-block">' in saved.content.decode()


def test_live_count_is_labelled_an_estimate_when_it_is_one(marketer_client, people, monkeypatch):
    monkeypatch.setattr("segments.views.count_people", lambda people: Counted(1_234_567, False))
    page = marketer_client.post(
        "/segments/preview/", {"n-0.0-attribute": "city", "n-0.0-op": "is_not_empty"}
    )
    html = page.content.decode()
    assert "≈ 1,234,567" in html and "(estimate" in html


def test_live_count_says_what_is_wrong_or_missing(marketer_client, people):
    empty = marketer_client.post("/segments/preview/", {"n-0.0-type": "attribute"})
    assert "Add a condition" in empty.content.decode()
    bad = marketer_client.post(
        "/segments/preview/", {"n-0.0-attribute": "ltv", "n-0.0-op": "gt", "n-0.0-value": "x"}
    )
    html = bad.content.decode()
    assert "Condition 1: Lifetime value &gt; needs a number" in html
    assert 'id="row-error-0-0" class="invalid-feedback d-block" hx-swap-oob="true">' in html


def test_the_builder_structure_is_re_rendered_for_htmx(marketer_client, people):
    page = marketer_client.post(
        "/segments/new/",
        {"n-0.0-attribute": "ltv", "builder": "add:0", "name": "", "kind": "snapshot"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="builder-tree",
    )
    html = page.content.decode()
    assert page.status_code == 200 and "<html" not in html
    assert 'id="builder-tree"' in html and 'name="n-0.1-type"' in html
    assert 'id="builder-count" class="card mb-3" aria-live="polite" hx-swap-oob="true"' in html
    # a number attribute offers number operators and a number input
    assert 'value="gte"' in html and 'type="number" step="any" name="n-0.0-value"' in html
    assert not Segment.objects.filter(name="").exists()


# --- Saving each kind ------------------------------------------------------------------------


LONDON_FIELDS = {"n-0.0-attribute": "city", "n-0.0-op": "is", "n-0.0-value": "London"}


@pytest.mark.parametrize("kind", ["snapshot", "realtime", "query"])
def test_save_as_each_rule_kind(marketer_client, workspace, people, kind, run_jobs):
    data = {"name": f"Londoners {kind}", "kind": kind, "refresh_every_minutes": "15"}
    with run_jobs():
        response = marketer_client.post("/segments/new/", data | LONDON_FIELDS)
    segment = Segment.objects.for_workspace(workspace).get(name=f"Londoners {kind}")
    assert response.status_code == 302 and response.url == f"/segments/{segment.pk}/"
    assert segment.kind == kind and segment.rules == LONDON
    assert segment.refresh_every_minutes == (15 if kind == "query" else None)
    assert ext_ids(segment_people(segment=segment, now=timezone.now())) == ["a", "b"]


def test_a_query_needs_its_schedule_and_names_are_unique(marketer_client, workspace, people):
    page = marketer_client.post("/segments/new/", {"name": "Q", "kind": "query"} | LONDON_FIELDS)
    assert "How often" in str(page.context["form"].errors)
    page = marketer_client.post(
        "/segments/new/",
        {"name": "Q", "kind": "query", "refresh_every_minutes": "2"} | LONDON_FIELDS,
    )
    assert "5 minutes or more" in str(page.context["form"].errors)
    segment_create(workspace=workspace, name="Taken", kind="static", actor=Actor(system="tests"))
    page = marketer_client.post(
        "/segments/new/", {"name": "taken", "kind": "snapshot"} | LONDON_FIELDS
    )
    assert "already exists" in page.content.decode()
    page = marketer_client.post("/segments/new/", {"name": "No rules", "kind": "snapshot"})
    assert "needs rules" in page.context["builder"].error


@pytest.mark.parametrize("kind", ["static", "everyone"])
def test_save_a_static_list_or_everyone_from_the_list_page(marketer_client, workspace, kind):
    response = marketer_client.post("/segments/", {"name": f"All {kind}", "kind": kind})
    segment = Segment.objects.for_workspace(workspace).get(name=f"All {kind}")
    assert response.status_code == 302 and segment.kind == kind and segment.rules is None


def test_edit_a_snapshot_shows_its_rules_and_saves_new_ones(marketer_client, workspace, people):
    segment = segment_create(
        workspace=workspace, name="S", kind="snapshot", rules=ACTIVE, actor=Actor(system="tests")
    )
    page = marketer_client.get(f"/segments/{segment.pk}/edit/")
    html = page.content.decode()
    assert '<option value="App Launch" selected>' in html
    assert 'name="n-0.0-amount" value="30"' in html
    response = marketer_client.post(f"/segments/{segment.pk}/edit/", {"name": "S2"} | LONDON_FIELDS)
    segment.refresh_from_db()
    assert response.status_code == 302 and (segment.name, segment.rules) == ("S2", LONDON)


def test_real_time_rules_cannot_change_the_page_says_why_and_duplicate_works(
    marketer_client, workspace, people, run_jobs
):
    segment = segment_create(
        workspace=workspace, name="Live", kind="realtime", rules=LONDON, actor=Actor(system="tests")
    )
    page = marketer_client.get(f"/segments/{segment.pk}/edit/")
    html = page.content.decode()
    assert "rules cannot change after creation" in html and 'name="n-0.0-type"' not in html
    assert f'href="/segments/{segment.pk}/duplicate/"' in html
    # renaming is fine
    assert (
        marketer_client.post(f"/segments/{segment.pk}/edit/", {"name": "Live!"}).status_code == 302
    )
    # new rules are refused with the reason and the way out
    page = marketer_client.post(
        f"/segments/{segment.pk}/edit/",
        {"name": "Live!", "n-0.0-attribute": "city", "n-0.0-op": "is", "n-0.0-value": "Paris"},
    )
    html = page.content.decode()
    assert "cannot change after creation" in html and "Duplicate it with new rules" in html
    segment.refresh_from_db()
    assert segment.rules == LONDON and segment.name == "Live!"
    # the duplicate link opens the builder with the rules, and saves a new segment
    page = marketer_client.get(f"/segments/{segment.pk}/duplicate/")
    assert page.context["form"]["name"].value() == "Copy of Live!"
    assert page.context["form"]["kind"].value() == "realtime"
    assert 'name="n-0.0-value" value="London"' in page.content.decode()
    with run_jobs():
        response = marketer_client.post(
            f"/segments/{segment.pk}/duplicate/",
            {"name": "Live Paris", "kind": "realtime", "n-0.0-attribute": "city"}
            | {"n-0.0-op": "is", "n-0.0-value": "Paris"},
        )
    copy = Segment.objects.for_workspace(workspace).get(name="Live Paris")
    assert response.url == f"/segments/{copy.pk}/"
    assert ext_ids(segment_people(segment=copy, now=timezone.now())) == ["c"]


def test_built_in_segments_offer_duplicate_instead_of_editing(marketer_client, workspace):
    builtin = Segment.objects.for_workspace(workspace).get(predefined="active_mobile_users")
    html = marketer_client.get(f"/segments/{builtin.pk}/edit/").content.decode()
    assert "built-in segment" in html and f"/segments/{builtin.pk}/duplicate/" in html
    page = marketer_client.get(f"/segments/{builtin.pk}/duplicate/")
    assert page.context["form"]["kind"].value() == "snapshot"
    assert marketer_client.post(f"/segments/{builtin.pk}/delete/").status_code == 302
    assert Segment.objects.filter(pk=builtin.pk).exists()


# --- The list --------------------------------------------------------------------------------


def test_list_shows_kind_people_last_computed_and_used_by_and_searches(
    marketer_client, workspace, people
):
    live = segment_create(
        workspace=workspace,
        name="Live London",
        kind="realtime",
        rules=LONDON,
        actor=Actor(system="tests"),
    )
    user = segment_create(
        workspace=workspace,
        name="Active Londoners",
        kind="snapshot",
        rules={"all": [ACTIVE, {"segment": live.pk, "op": "in"}]},
        actor=Actor(system="tests"),
    )
    page = marketer_client.get("/segments/")
    html = page.content.decode()
    row = html.split(f'data-segment="{live.pk}"')[1].split("</tr>")[0]
    assert "Real-time" in row and f'data-count="{live.pk}">2<' in row
    assert f'href="/segments/{user.pk}/">Active Londoners</a>' in row  # used by
    names = [s.name for s in marketer_client.get("/segments/", {"q": "london"}).context["segments"]]
    assert names == ["Active Londoners", "Live London"]
    by_id = marketer_client.get("/segments/", {"q": str(live.pk)}).context["segments"]
    assert [s.name for s in by_id] == ["Live London"]
    by_kind = marketer_client.get("/segments/", {"kind": "realtime"}).context["segments"]
    assert [s.name for s in by_kind] == ["Live London"]


def test_list_query_count_does_not_grow_with_segments(marketer_client, workspace):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert marketer_client.get("/segments/").status_code == 200
        return len(captured)

    queries()  # the first request also saves the session
    before = queries()
    for i in range(10):
        segment_create(
            workspace=workspace,
            name=f"S{i}",
            kind="snapshot",
            rules=LONDON,
            actor=Actor(system="tests"),
        )
    assert queries() == before


# --- A segment's page ------------------------------------------------------------------------


def test_segment_page_shows_plain_words_members_and_refresh_history(
    marketer_client, workspace, people
):
    segment = segment_create(
        workspace=workspace,
        name="Active London",
        kind="realtime",
        rules={"all": [LONDON, ACTIVE]},
        actor=Actor(system="tests"),
    )
    page = marketer_client.get(f"/segments/{segment.pk}/")
    html = page.content.decode()
    assert "City is London AND App Launch at least once in the last 30 days" in html
    assert [p.external_id for p in page.context["rows"]] == ["a"]
    assert 'id="segment-count">1</span> person' in html
    assert len(page.context["history"]) == 1 and "done" in html


def test_a_query_segment_shows_last_and_next_refresh_and_a_failure_with_its_reason(
    marketer_client, workspace, people
):
    segment = segment_create(
        workspace=workspace,
        name="Q",
        kind="query",
        rules=LONDON,
        refresh_every_minutes=30,
        actor=Actor(system="tests"),
    )
    html = marketer_client.get(f"/segments/{segment.pk}/").content.decode()
    assert f"{segment.computed_at:%-d %b %Y %H:%M}" in html.split('id="last-refresh"')[1]
    assert f"{segment.next_refresh_at:%-d %b %Y %H:%M}" in html.split('id="next-refresh"')[1]
    # an attribute the rules need disappears: the next refresh fails, and says why
    Segment.objects.filter(pk=segment.pk).update(rules={"attribute": "gone", "op": "is_empty"})
    segment.refresh_from_db()
    segment_refresh(segment=segment, actor=Actor(system="tests"))
    html = marketer_client.get(f"/segments/{segment.pk}/").content.decode()
    assert "The last refresh failed." in html and "unknown attribute “gone”" in html
    history = marketer_client.get(f"/segments/{segment.pk}/").context["history"]
    assert [r.status for r in history] == [RefreshStatus.FAILED, RefreshStatus.OK]


def test_refresh_now_and_count_now(marketer_client, workspace, people, run_jobs):
    live = segment_create(
        workspace=workspace, name="Live", kind="realtime", rules=LONDON, actor=Actor(system="tests")
    )
    person_upsert(
        workspace=workspace, external_id="c", data={"city": "London"}, actor=Actor(system="tests")
    )
    with run_jobs():
        marketer_client.post(f"/segments/{live.pk}/refresh/")
    # the page's poll finds the refresh ended: the page reloads with its outcome
    status = marketer_client.get(f"/segments/{live.pk}/refresh/status/", HTTP_HX_REQUEST="true")
    assert status["HX-Refresh"] == "true"
    page = marketer_client.get(f"/segments/{live.pk}/").content.decode()
    assert "Refreshed “Live”: 1 entered, 0 left, 3 people." in page
    assert SegmentRefresh.objects.filter(segment=live).count() == 2
    snap = segment_create(
        workspace=workspace, name="Snap", kind="snapshot", rules=LONDON, actor=Actor(system="tests")
    )
    with run_jobs():
        marketer_client.post(f"/segments/{snap.pk}/refresh/")
    marketer_client.get(f"/segments/{snap.pk}/refresh/status/", HTTP_HX_REQUEST="true")
    page = marketer_client.get(f"/segments/{snap.pk}/").content.decode()
    assert "Counted “Snap”: 3 people." in page


def test_refresh_now_queues_one_job_the_pages_show_it_waiting_then_the_count(
    marketer_client, workspace, people, run_jobs
):
    live = segment_create(
        workspace=workspace, name="Live", kind="realtime", rules=LONDON, actor=Actor(system="tests")
    )
    person_upsert(
        workspace=workspace, external_id="c", data={"city": "London"}, actor=Actor(system="tests")
    )
    # no worker has run it yet: asking twice is one job, and both pages say it waits
    marketer_client.post(f"/segments/{live.pk}/refresh/")
    marketer_client.post(f"/segments/{live.pk}/refresh/")
    pending = SegmentRefresh.objects.get(segment=live, status=RefreshStatus.QUEUED)
    page = marketer_client.get(f"/segments/{live.pk}/").content.decode()
    assert 'id="refresh-pending"' in page and "Waiting for a worker to refresh it" in page
    assert f'hx-get="/segments/{live.pk}/refresh/status/"' in page
    listing = marketer_client.get("/segments/").content.decode()
    assert f'data-pending="queued" hx-get="/segments/{live.pk}/refresh/status/?row=1"' in listing
    poll = marketer_client.get(f"/segments/{live.pk}/refresh/status/", HTTP_HX_REQUEST="true")
    assert "HX-Refresh" not in poll and "Waiting for a worker" in poll.content.decode()
    # the worker runs it (as after the request's commit): the row stops polling, counted
    with run_jobs():
        transaction.on_commit(lambda: segment_refresh_task.delay(pending.pk))
    pending.refresh_from_db()
    assert pending.status == RefreshStatus.OK and pending.attempts == 1
    assert (pending.entered, pending.people_count) == (1, 3)
    row = marketer_client.get(f"/segments/{live.pk}/refresh/status/?row=1").content.decode()
    assert "data-pending" not in row and ">3</td>" in row


def test_saving_new_rules_of_a_snapshot_recounts_it_so_the_list_tells_the_truth(
    marketer_client, workspace, people, run_jobs
):
    snap = segment_create(
        workspace=workspace, name="Snap", kind="snapshot", rules=LONDON, actor=Actor(system="tests")
    )
    assert snap.people_count == 2 and snap.computed_at is not None
    edit = {"name": "Snap", "kind": "snapshot", "n-0.0-attribute": "city"}
    marketer_client.post(
        f"/segments/{snap.pk}/edit/", edit | {"n-0.0-op": "is", "n-0.0-value": "Paris"}
    )
    listing = marketer_client.get("/segments/").content.decode()
    assert "counting…" in listing  # never the old count with its old time
    pending = SegmentRefresh.objects.get(segment=snap, status=RefreshStatus.QUEUED)
    with run_jobs():  # the worker runs it
        transaction.on_commit(lambda: segment_refresh_task.delay(pending.pk))
    snap.refresh_from_db()
    assert snap.people_count == 1 and snap.refresh_status == RefreshStatus.OK
    listing = marketer_client.get("/segments/").content.decode()
    assert "counting…" not in listing and f'data-count="{snap.pk}">1</td>' in listing


def test_a_refresh_whose_worker_keeps_dying_gives_up_and_says_why(workspace, people, run_jobs):
    from accounts.jobs import MAX_ATTEMPTS
    from segments.services import reclaim_stale_refreshes, segment_recount_start

    seg = segment_create(
        workspace=workspace, name="Q", kind="snapshot", rules=LONDON, actor=Actor(system="tests")
    )
    refresh = segment_recount_start(segment=seg, actor=Actor(system="tests"))
    assert segment_recount_start(segment=seg, actor=Actor(system="tests")) == refresh
    # each delivery that started it died: the attempts are spent
    SegmentRefresh.objects.filter(pk=refresh.pk).update(
        status=RefreshStatus.RUNNING, attempts=MAX_ATTEMPTS
    )
    # the beat finds it stale and delivers it again; the delivery gives up, saying why
    later = timezone.now() + timedelta(minutes=11)
    with run_jobs():
        assert reclaim_stale_refreshes(now=later) == [refresh.pk]
    refresh.refresh_from_db()
    seg.refresh_from_db()
    assert refresh.status == seg.refresh_status == RefreshStatus.FAILED
    assert f"Gave up after {MAX_ATTEMPTS} attempts" in refresh.error
    assert reclaim_stale_refreshes(now=later) == []


def test_a_re_delivered_refresh_leaves_a_live_attempt_alone(workspace, people):
    from segments.services import _LOCK_NAMESPACE, segment_recount_start, segment_refresh_run
    from tests.accounts.test_jobs import other_connection

    seg = segment_create(
        workspace=workspace, name="Q", kind="snapshot", rules=LONDON, actor=Actor(system="tests")
    )
    refresh = segment_recount_start(segment=seg, actor=Actor(system="tests"))
    key = _LOCK_NAMESPACE + refresh.pk
    with other_connection() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])  # the first delivery still works
        segment_refresh_run(refresh.pk)
        refresh.refresh_from_db()
        assert refresh.status == RefreshStatus.QUEUED and refresh.attempts == 0
        other.execute("SELECT pg_advisory_unlock(%s)", [key])  # it died
    segment_refresh_run(refresh.pk)
    refresh.refresh_from_db()
    assert refresh.status == RefreshStatus.OK and refresh.people_count == 2


def test_members_of_a_static_segment_can_be_removed_on_its_page(marketer_client, workspace, people):
    segment = segment_create(
        workspace=workspace, name="Hand picked", kind="static", actor=Actor(system="tests")
    )
    static_members_change(
        segment=segment,
        people=Person.objects.for_workspace(workspace),
        add=True,
        actor=Actor(system="tests"),
    )
    page = marketer_client.get(f"/segments/{segment.pk}/")
    assert 'id="remove-members"' in page.content.decode()
    response = marketer_client.post(
        f"/segments/{segment.pk}/members/remove/",
        {"person": [people["a"].pk, people["c"].pk]},
        follow=True,
    )
    assert "Removed 2 people from “Hand picked”." in response.content.decode()
    assert ext_ids(segment_people(segment=segment, now=timezone.now())) == ["b"]
    rules_segment = segment_create(
        workspace=workspace, name="R", kind="realtime", rules=LONDON, actor=Actor(system="tests")
    )
    response = marketer_client.post(
        f"/segments/{rules_segment.pk}/members/remove/", {"person": [people["a"].pk]}, follow=True
    )
    assert "Only static segments" in response.content.decode()
    assert SegmentMember.objects.filter(segment=rules_segment, exited_at__isnull=True).count() == 2


def test_add_and_remove_the_members_to_a_target_audience_with_the_changed_count(
    marketer_client, workspace, people
):
    segment = segment_create(
        workspace=workspace,
        name="London",
        kind="realtime",
        rules=LONDON,
        actor=Actor(system="tests"),
    )
    page = marketer_client.get(f"/segments/{segment.pk}/")
    assert 'list="audience-names"' in page.content.decode()
    url = f"/segments/{segment.pk}/to-audience/"
    response = marketer_client.post(
        url, {"audience": " Spring  sale ", "action": "add"}, follow=True
    )
    assert "Added 2 people to the audience “Spring sale” (2 members now)." in (
        response.content.decode()
    )
    response = marketer_client.post(url, {"audience": "spring sale", "action": "add"}, follow=True)
    assert "Added 0 people" in response.content.decode()
    response = marketer_client.post(
        url, {"audience": "Spring sale", "action": "remove"}, follow=True
    )
    assert "Removed 2 people from the audience “Spring sale”." in response.content.decode()
    response = marketer_client.post(url, {"audience": "Nope", "action": "remove"}, follow=True)
    assert "There is no audience named “Nope”" in response.content.decode()
    response = marketer_client.post(url, {"audience": "", "action": "add"}, follow=True)
    assert "Choose an audience" in response.content.decode()
    assert TargetAudience.objects.for_workspace(workspace).count() == 1


def test_delete_a_segment(marketer_client, workspace):
    segment = segment_create(
        workspace=workspace, name="Old", kind="static", actor=Actor(system="tests")
    )
    response = marketer_client.post(f"/segments/{segment.pk}/delete/", follow=True)
    assert "Segment “Old” deleted." in response.content.decode()
    assert not Segment.objects.filter(pk=segment.pk).exists()


def test_a_segment_other_segments_use_cannot_be_deleted_until_they_stop(marketer_client, workspace):
    vips = segment_create(
        workspace=workspace, name="VIPs", kind="static", actor=Actor(system="tests")
    )
    uses = segment_create(
        workspace=workspace, name="VIPs in town", kind="snapshot",
        rules={"segment": vips.pk, "op": "in"}, actor=Actor(system="tests")
    )  # fmt: skip
    response = marketer_client.post(f"/segments/{vips.pk}/delete/", follow=True)
    assert (
        "“VIPs” cannot be deleted: the rules of “VIPs in town” use it. Take it out of their "
        "rules first (or delete them)."
    ) in response.content.decode()
    assert Segment.objects.filter(pk=vips.pk).exists()

    uses.delete()
    response = marketer_client.post(f"/segments/{vips.pk}/delete/", follow=True)
    assert "Segment “VIPs” deleted." in response.content.decode()


# --- Why in or out ---------------------------------------------------------------------------


def test_why_on_the_segment_page_gives_each_condition_true_or_false(
    marketer_client, workspace, people
):
    segment = segment_create(
        workspace=workspace,
        name="Active London",
        kind="snapshot",
        rules={"all": [LONDON, ACTIVE]},
        actor=Actor(system="tests"),
    )
    page = marketer_client.get(f"/segments/{segment.pk}/", {"person": "b"})
    why = page.context["why"]
    assert why["person"] == people["b"] and why["explanation"].member is False
    assert [(r["path"], r["value"]) for r in why["explanation"].rows] == [
        ("", False),
        ("all.0", True),
        ("all.1", False),
    ]
    html = page.content.decode()
    assert 'data-path="all.0" data-value="true"' in html
    assert 'data-path="all.1" data-value="false"' in html
    assert "App Launch at least once in the last 30 days" in html
    assert 'id="why-verdict">out<' in html
    # by Herald id, as htmx asks it: only the card comes back
    part = marketer_client.get(
        f"/segments/{segment.pk}/",
        {"person_id": people["a"].pk},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="why",
    )
    assert "<html" not in part.content.decode() and 'id="why-verdict">in<' in part.content.decode()
    nobody = marketer_client.get(f"/segments/{segment.pk}/", {"person": "zzz"})
    assert "Nobody in this workspace matches" in nobody.content.decode()


def test_why_says_when_a_stored_segment_waits_for_its_next_refresh(
    marketer_client, workspace, people
):
    segment = segment_create(
        workspace=workspace, name="Live", kind="realtime", rules=LONDON, actor=Actor(system="tests")
    )
    person_upsert(
        workspace=workspace, external_id="c", data={"city": "London"}, actor=Actor(system="tests")
    )
    page = marketer_client.get(f"/segments/{segment.pk}/", {"person": "c"})
    explanation = page.context["why"]["explanation"]
    assert (explanation.member, explanation.rules_say, explanation.pending) == (False, True, True)
    assert "they enter at the segment's next refresh" in page.content.decode()


def test_why_on_the_profile_lists_segments_with_each_condition(marketer_client, workspace, people):
    Segment.objects.for_workspace(workspace).exclude(predefined="").delete()
    segment = segment_create(
        workspace=workspace,
        name="Active London",
        kind="snapshot",
        rules={"any": [{"not": LONDON}, ACTIVE]},
        actor=Actor(system="tests"),
    )
    static = segment_create(
        workspace=workspace, name="Picked", kind="static", actor=Actor(system="tests")
    )
    explained = segment_explanations(people["a"], workspace, timezone.now())
    assert [e.segment for e in explained.segments] == [segment, static]
    first = explained.segments[0]
    assert first.member is True
    assert [(r["path"], r["group"], r["value"]) for r in first.rows] == [
        ("", "Any of these (OR)", True),
        ("any.0", "Not this", False),
        ("any.0.not", "", True),
        ("any.1", "", True),
    ]
    assert explained.segments[1].member is False and not explained.more
    page = marketer_client.get(f"/people/{people['a'].pk}/")
    html = page.content.decode()
    assert 'id="why-segments"' in html
    assert 'data-path="any.0" data-value="false"' in html and 'data-member="in"' in html
    assert f"/segments/{segment.pk}/?person_id={people['a'].pk}#why" in html


# --- People page: into a static segment ------------------------------------------------------


def test_people_page_selection_goes_into_a_static_segment(marketer_client, workspace, people):
    assert 'id="manage-segments-button"' in marketer_client.get("/people/").content.decode()
    response = marketer_client.post(
        "/people/bulk/segment/",
        {"city": "London", "all_matching": "1", "segment": "Picked", "action": "add"},
        follow=True,
    )
    assert "Added 2 people to the new static segment “Picked” (2 members)." in (
        response.content.decode()
    )
    segment = Segment.objects.for_workspace(workspace).get(name="Picked")
    assert segment.kind == SegmentKind.STATIC
    response = marketer_client.post(
        "/people/bulk/segment/",
        {"person": [people["a"].pk], "segment": "picked", "action": "remove"},
        follow=True,
    )
    assert "Removed 1 people from “Picked”." in response.content.decode()
    assert ext_ids(segment_people(segment=segment, now=timezone.now())) == ["b"]
    segment_create(
        workspace=workspace,
        name="Rules",
        kind="snapshot",
        rules=LONDON,
        actor=Actor(system="tests"),
    )
    response = marketer_client.post(
        "/people/bulk/segment/",
        {"all_matching": "1", "segment": "Rules", "action": "add"},
        follow=True,
    )
    assert "its members follow its rules" in response.content.decode()
    options = marketer_client.get("/segments/static-options/").content.decode()
    assert options.strip() == '<option value="Picked">'


# --- Roles and tenancy ------------------------------------------------------------------------


def test_viewer_reads_segments_but_gets_403_on_every_write(viewer_client, workspace, people):
    segment = segment_create(
        workspace=workspace, name="London", kind="static", actor=Actor(system="tests")
    )
    assert viewer_client.get("/segments/").status_code == 200
    page = viewer_client.get(f"/segments/{segment.pk}/")
    assert page.status_code == 200 and 'id="to-audience"' not in page.content.decode()
    assert viewer_client.get("/segments/new/").status_code == 403
    for url, data in [
        ("/segments/", {"name": "X", "kind": "static"}),
        ("/segments/new/", {"name": "X", "kind": "snapshot"} | LONDON_FIELDS),
        ("/segments/preview/", LONDON_FIELDS),
        (f"/segments/{segment.pk}/edit/", {"name": "X"}),
        (f"/segments/{segment.pk}/to-audience/", {"audience": "A", "action": "add"}),
        (f"/segments/{segment.pk}/members/remove/", {"person": [people["a"].pk]}),
        (f"/segments/{segment.pk}/refresh/", {}),
        (f"/segments/{segment.pk}/delete/", {}),
        ("/people/bulk/segment/", {"all_matching": "1", "segment": "London", "action": "add"}),
    ]:
        assert viewer_client.post(url, data).status_code == 403, url
    assert Segment.objects.filter(pk=segment.pk, name="London").exists()
    assert not SegmentMember.objects.filter(segment=segment).exists()


def test_ops_cannot_change_segments(member_client, workspace):
    client = member_client(Role.OPS)
    assert client.get("/segments/").status_code == 200
    assert client.post("/segments/", {"name": "X", "kind": "static"}).status_code == 403
    assert 'id="manage-segments-button"' not in client.get("/people/").content.decode()


def test_other_workspaces_segment_is_not_found(marketer_client, other_workspace):
    foreign = segment_create(
        workspace=other_workspace,
        name="Theirs",
        kind="realtime",
        rules=LONDON,
        actor=Actor(system="tests"),
    )
    for url in ["", "edit/", "duplicate/"]:
        assert marketer_client.get(f"/segments/{foreign.pk}/{url}").status_code == 404
    for url in ["to-audience/", "refresh/", "delete/", "members/remove/", "edit/"]:
        data = {"audience": "A", "action": "add", "name": "Mine"}
        assert marketer_client.post(f"/segments/{foreign.pk}/{url}", data).status_code == 404
    # nor can a rule name it
    page = marketer_client.post(
        "/segments/new/",
        {"name": "Sneaky", "kind": "snapshot", "n-0.0-type": "segment"}
        | {"n-0.0-segment": str(foreign.pk)},
    )
    assert f"There is no segment {foreign.pk}" in page.context["builder"].root.children[0].error
    assert Segment.objects.filter(pk=foreign.pk, name="Theirs").exists()


def test_tags_from_the_catalogue_are_offered(marketer_client, workspace, people):
    tag = TagFactory(workspace=workspace, name="VIP")
    tags_assign(
        workspace=workspace,
        tag=tag,
        people=Person.objects.filter(pk=people["a"].pk),
        actor=Actor(system="tests"),
    )
    page = marketer_client.get("/segments/new/")
    assert '<option value="VIP">' in page.content.decode()
    assert page.context["catalogue"].events == ["App Launch", "Purchase"]
    assert ("ltv", "Lifetime value") in page.context["catalogue"].attribute_choices
    count = marketer_client.post(
        "/segments/preview/", {"n-0.0-type": "tag", "n-0.0-tag": "vip", "n-0.0-tag_op": "has"}
    )
    assert count.context["count"] == Counted(1, True)


def test_catalogue_of_a_new_workspace_has_the_built_in_attributes(workspace):
    catalogue = make_catalogue(definitions={}, events=[], tags=[], audiences=[], segments=[])
    assert catalogue.attribute_choices[0] == ("external_id", "External ID")
    assert ("city", "City") in catalogue.attribute_choices
