"""Message conditions (shared/API.md, Segments): what the send ledger holds for a person,
compiled as one EXISTS over the deliveries, written by the API and by the builder."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.audit import Actor
from campaigns.models import Campaign, Delivery
from people.models import Person
from segments.forms import RuleBuilder, make_catalogue
from segments.rules import compile_rules, describe_rules, explain_rules, parse_rules
from segments.rules.schema import RuleError, check_catalogue
from segments.services import segment_create
from tests.factories import PersonFactory, WorkspaceFactory

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SYSTEM = Actor(system="tests")


def _campaign(ws, name, channel="email"):
    return Campaign.objects.create(workspace=ws, name=name, channel=channel, status="sent")


def _delivery(campaign, person, status="sent", *, sent=None, opened=None, clicked=None,
              created=None, is_test=False):  # fmt: skip
    delivery = Delivery.objects.create(
        workspace=campaign.workspace, campaign=campaign, person=person, status=status,
        is_test=is_test, sent_at=sent, opened_at=opened, clicked_at=clicked,
    )  # fmt: skip
    if created is not None:  # auto_now_add: set after the insert
        Delivery.objects.filter(pk=delivery.pk).update(created_at=created)
    return delivery


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


def matching(ws, rules, now=NOW) -> set[str]:
    tree = parse_rules(rules, workspace=ws)
    check_catalogue(tree, workspace=ws)
    people = Person.objects.for_workspace(ws).filter(compile_rules(tree, workspace=ws, now=now))
    return set(people.values_list("external_id", flat=True))


@pytest.fixture
def ledger(workspace):
    """ann: spring email 2 days ago, opened and clicked; bob: spring email 10 days ago;
    cat: an SMS yesterday; dan: the spring email bounced 1 day ago; eve: only a test send;
    fay: nothing."""
    spring = _campaign(workspace, "Spring sale")
    texts = _campaign(workspace, "Texts", "sms")
    people = {k: PersonFactory(workspace=workspace, external_id=k)
              for k in ("ann", "bob", "cat", "dan", "eve", "fay")}  # fmt: skip
    day = timedelta(days=1)
    _delivery(spring, people["ann"], "delivered", sent=NOW - 2 * day, opened=NOW - 2 * day,
              clicked=NOW - day)  # fmt: skip
    _delivery(spring, people["bob"], sent=NOW - 10 * day)
    _delivery(texts, people["cat"], sent=NOW - day)
    _delivery(spring, people["dan"], "bounced", created=NOW - day)
    _delivery(spring, people["eve"], sent=NOW - day, is_test=True)
    return {"spring": spring, "texts": texts}


def test_received_counts_sent_and_delivered_never_tests_or_bounces(workspace, ledger):
    assert matching(workspace, {"message": {}, "op": "received"}) == {"ann", "bob", "cat"}


def test_not_received_is_everyone_else(workspace, ledger):
    rule = {"message": {"channel": "email"}, "op": "not_received"}
    assert matching(workspace, rule) == {"cat", "dan", "eve", "fay"}


def test_a_window_reads_the_send_time(workspace, ledger):
    rule = {"message": {"channel": "email"}, "op": "received",
            "time": {"op": "within_last", "unit": "days", "amount": 7}}  # fmt: skip
    assert matching(workspace, rule) == {"ann"}
    rule["time"] = {"op": "before_last", "unit": "days", "amount": 7}
    assert matching(workspace, rule) == {"bob"}
    rule["time"] = {"op": "between_last", "unit": "days", "from": 1, "to": 3}
    assert matching(workspace, rule) == {"ann"}


def test_contacted_within_a_period_is_any_channel(workspace, ledger):
    rule = {"message": {}, "op": "received", "time": {"op": "within_last", "unit": "days",
                                                      "amount": 3}}  # fmt: skip
    assert matching(workspace, rule) == {"ann", "cat"}


def test_by_campaign_and_by_channel(workspace, ledger):
    spring = ledger["spring"].pk
    assert matching(workspace, {"message": {"campaign": spring}, "op": "received"}) == {
        "ann",
        "bob",
    }
    assert matching(workspace, {"message": {"channel": "sms"}, "op": "received"}) == {"cat"}
    # a campaign and another channel: nobody
    rule = {"message": {"campaign": spring, "channel": "sms"}, "op": "received"}
    assert matching(workspace, rule) == set()


def test_opened_clicked_and_bounced(workspace, ledger):
    spring = ledger["spring"].pk
    assert matching(workspace, {"message": {"campaign": spring}, "op": "opened"}) == {"ann"}
    clicked_lately = {"message": {"campaign": spring}, "op": "clicked",
                      "time": {"op": "within_last", "unit": "hours", "amount": 36}}  # fmt: skip
    assert matching(workspace, clicked_lately) == {"ann"}
    clicked_lately["time"]["amount"] = 12
    assert matching(workspace, clicked_lately) == set()
    bounced = {"message": {"channel": "email"}, "op": "bounced",
               "time": {"op": "within_last", "unit": "days", "amount": 2}}  # fmt: skip
    assert matching(workspace, bounced) == {"dan"}


def test_message_conditions_combine_with_others_in_one_query(workspace, ledger,
                                                           django_assert_num_queries):  # fmt: skip
    rule = {"all": [{"message": {"channel": "email"}, "op": "received"},
                    {"not": {"message": {"channel": "email"}, "op": "clicked"}}]}  # fmt: skip
    tree = parse_rules(rule, workspace=workspace)
    with django_assert_num_queries(1):
        people = Person.objects.for_workspace(workspace).filter(
            compile_rules(tree, workspace=workspace, now=NOW)
        )
        assert set(people.values_list("external_id", flat=True)) == {"bob"}


def test_another_workspaces_ledger_never_counts(workspace, ledger):
    other = WorkspaceFactory()
    theirs = _campaign(other, "Theirs")
    stranger = PersonFactory(workspace=other, external_id="fay")
    _delivery(theirs, stranger, sent=NOW)
    assert matching(workspace, {"message": {}, "op": "received"}) == {"ann", "bob", "cat"}
    # and their campaign cannot be named here
    with pytest.raises(RuleError) as e:
        matching(workspace, {"message": {"campaign": theirs.pk}, "op": "received"})
    assert e.value.path == "message.campaign"


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        ({"message": "email", "op": "received"}, "message", "expected"),
        ({"message": {"campaign": 0}, "op": "received"}, "message.campaign", "positive"),
        ({"message": {"campaign": True}, "op": "received"}, "message.campaign", "positive"),
        ({"message": {"channel": "fax"}, "op": "received"}, "message.channel", ""),
        ({"message": {"when": 1}, "op": "received"}, "message", ""),
        ({"message": {}, "op": "read"}, "op", ""),
        ({"message": {}, "op": "received", "time": {"op": "soon"}}, "time", ""),
    ],
)
def test_a_bad_message_condition_names_its_field(rule, path, words):
    with pytest.raises(RuleError) as e:
        parse_rules(rule)
    assert e.value.path.startswith(path), e.value.path
    assert words in e.value.message


def test_described_in_words_with_the_campaign_name(workspace, ledger):
    spring = ledger["spring"].pk
    tree = parse_rules({"all": [
        {"message": {"campaign": spring}, "op": "clicked",
         "time": {"op": "within_last", "unit": "days", "amount": 3}},
        {"message": {"channel": "sms"}, "op": "not_received"},
    ]})  # fmt: skip
    words = describe_rules(tree, workspace=workspace)
    assert words.startswith("clicked campaign “Spring sale” in the last 3 days AND ")
    assert "was not sent an SMS" in words
    # without the workspace (no database), the campaign is named by its id
    assert f"campaign #{spring}" in describe_rules(tree)


def test_explain_says_which_message_condition_a_person_meets(workspace, ledger):
    ann = Person.objects.for_workspace(workspace).get(external_id="ann")
    rules = {"all": [{"message": {"channel": "email"}, "op": "opened"},
                     {"message": {"channel": "sms"}, "op": "received"}]}  # fmt: skip
    tree = parse_rules(rules, workspace=workspace)
    explained = explain_rules(tree, workspace=workspace, person=ann, now=NOW)
    assert [(words, met) for _path, words, met in explained][1:] == [
        ("opened an email", True),
        ("was sent an SMS", False),
    ]


def test_real_time_segments_refuse_message_conditions(workspace):
    with pytest.raises(RuleError) as e:
        segment_create(workspace=workspace, name="RT", kind="realtime",
                       rules={"message": {}, "op": "received"}, actor=SYSTEM)  # fmt: skip
    assert "real-time segments cannot use message conditions" in e.value.message


def test_a_snapshot_segment_counts_by_the_ledger(workspace, ledger):
    segment = segment_create(workspace=workspace, name="Mailed", kind="snapshot",
                             rules={"message": {"channel": "email"}, "op": "received"},
                             actor=SYSTEM)  # fmt: skip
    from segments.selectors import segment_people

    people = segment_people(segment=segment, now=NOW)
    assert set(people.values_list("external_id", flat=True)) == {"ann", "bob"}


# --- the API ------------------------------------------------------------------------------


def test_the_api_previews_and_refuses_message_conditions(api_client, workspace, ledger):
    spring = ledger["spring"].pk
    answer = api_client.post(
        "/api/v1/segments/preview",
        {"rules": {"message": {"campaign": spring}, "op": "received"}},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["count"] == 2
    answer = api_client.post(
        "/api/v1/segments",
        {"name": "Nope", "kind": "snapshot", "rules": {"message": {"campaign": 99999},
                                                       "op": "received"}},
        content_type="application/json",
    )  # fmt: skip
    assert answer.status_code == 422
    assert "no such campaign" in answer.content.decode()


# --- the builder --------------------------------------------------------------------------


def _catalogue(ws, campaigns=()):
    return make_catalogue(definitions={}, events=[], tags=[], audiences=[], segments=[],
                          campaigns=campaigns)  # fmt: skip


def test_the_builder_writes_and_reads_a_message_row(workspace, ledger):
    spring = ledger["spring"]
    catalogue = _catalogue(workspace, [(spring.pk, "Spring sale (email)")])
    data = {"n-0.0-type": "message", "n-0.0-message_op": "clicked", "n-0.0-channel": "email",
            "n-0.0-campaign": str(spring.pk), "n-0.0-time_op": "within_last",
            "n-0.0-amount": "3", "n-0.0-unit": "days"}  # fmt: skip
    builder = RuleBuilder.from_post(data, catalogue)
    tree = builder.tree(strict=True)
    assert not builder.has_errors, builder.first_error()
    rule = {"message": {"channel": "email", "campaign": spring.pk}, "op": "clicked",
            "time": {"op": "within_last", "unit": "days", "amount": 3}}  # fmt: skip
    assert tree == rule
    # and back: a stored rule fills the same fields
    again = RuleBuilder.from_rules(rule, catalogue)
    assert again.tree(strict=True) == rule


def test_a_message_row_with_nothing_chosen_is_any_message(workspace):
    builder = RuleBuilder.from_post({"n-0.0-type": "message"}, _catalogue(workspace))
    assert builder.tree(strict=True) == {"message": {}, "op": "received"}


def test_the_builder_page_offers_the_campaigns(marketer_client, workspace, ledger):
    # switching a row to "Message" shows its pickers, the workspace's campaigns among them
    page = marketer_client.post("/segments/new/", {"builder": "refresh", "name": "",
                                                   "n-0.0-type": "message"})  # fmt: skip
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="n-0.0-message_op"' in html
    assert "Spring sale (email)" in html and "Texts (sms)" in html
    data = {"name": "Clickers", "kind": "snapshot", "n-0.0-type": "message",
            "n-0.0-message_op": "clicked", "n-0.0-campaign": str(ledger["spring"].pk)}  # fmt: skip
    page = marketer_client.post("/segments/new/", data)
    assert page.status_code == 302, page.context["builder"].first_error()
    from segments.models import Segment

    saved = Segment.objects.for_workspace(workspace).get(name="Clickers")
    assert saved.rules == {"message": {"campaign": ledger["spring"].pk}, "op": "clicked"}
