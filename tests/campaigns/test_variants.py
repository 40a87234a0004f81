"""A/B variants (campaigns.variants): each person's variant fixed at launch by a stable
hash, the shares following the percentages; each variant's message sent to its people; a
test phase holding the rest until the winner by human open rate is chosen at its time
(pinned), then sent to them, nobody twice; a winner chosen by hand; per-variant stats
with the two-proportion test; bad input a 422 naming the field."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.audit import Actor
from campaigns import tracking
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from campaigns.selectors import engagement_over_time, variant_stats
from campaigns.services import campaigns_decide_due
from campaigns.variants import compare, two_proportion_p
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from segments.services import segment_create, static_members_change
from tests.campaigns.test_tracking import BROWSER, MPP, redis_lists  # noqa: F401 - fixture
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
BASE = "/api/v1/campaigns"
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
EMAIL = {"subject": "Spring sale", "text": "Sale", "html": "<p>Sale</p>"}


def post(client, path, body=None):
    return client.post(f"{BASE}{path}", body or {}, content_type="application/json")


def patch(client, path, body):
    return client.patch(f"{BASE}{path}", body, content_type="application/json")


@pytest.fixture
def sandbox(workspace):
    for channel in ("email", "sms", "push"):
        provider_set(workspace=workspace, channel=channel, kind="sandbox", settings={},
                     secrets={}, actor=ACTOR)  # fmt: skip


def crowd(workspace, n):
    Person.objects.bulk_create([
        Person(workspace=workspace, external_id=f"p{i}", email=f"p{i}@example.com",
               first_name=f"P{i}") for i in range(n)
    ])  # fmt: skip
    segment = segment_create(workspace=workspace, name=f"Crowd {n}", kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.for_workspace(workspace),
                          add=True, actor=ACTOR)  # fmt: skip
    return segment


def create(client, segment, **extra):
    answer = post(client, "", {"name": "Spring", "channel": "email", "include": [segment.pk],
                               "content": EMAIL, **extra})  # fmt: skip
    assert answer.status_code == 201, answer.content
    return answer.json()


def launch(client, campaign_id, run_jobs, *, now=NOW):
    from campaigns.services import campaign_launch, campaign_launch_run

    campaign = Campaign.objects.get(pk=campaign_id)
    campaign = campaign_launch(campaign=campaign, actor=ACTOR, now=now)
    assert campaign_launch_run(launch_id=campaign.launches.get().pk, now=now).status == "done"
    return campaign


def subjects_by_address():
    return dict(SandboxMessage.objects.values_list("address", "subject"))


THREE = [
    {"name": "Plain", "percent": 50},
    {"name": "Urgent", "percent": 30, "content": {"subject": "Last day, {{ person.first_name }}"}},
    {"name": "Emoji", "percent": 20, "content": {"subject": "🌷 Spring sale"}},
]


def test_each_person_gets_a_stable_variant_in_the_percentages_and_its_message(
    api_client, workspace, sandbox, run_jobs
):
    segment = crowd(workspace, 3000)
    body = create(api_client, segment, variants=THREE)
    assert [(v["key"], v["name"], v["percent"]) for v in body["variants"]] == [
        ("A", "Plain", 50), ("B", "Urgent", 30), ("C", "Emoji", 20)]  # fmt: skip
    assert body["ab_test"] is None
    campaign = launch(api_client, body["id"], run_jobs)
    assigned = dict(Delivery.objects.filter(campaign=campaign).values_list("person_id", "variant"))
    shares = {k: list(assigned.values()).count(k) / 3000 for k in "ABC"}
    for key, share in (("A", 0.5), ("B", 0.3), ("C", 0.2)):
        assert abs(shares[key] - share) < 0.03, shares
    # stable: the same people in the same variants when the ledger is frozen again
    from campaigns.dispatch.freeze import freeze

    Delivery.objects.filter(campaign=campaign).delete()
    freeze(campaign, now=NOW)
    again = dict(Delivery.objects.filter(campaign=campaign).values_list("person_id", "variant"))
    assert again == assigned
    dispatch(campaign.pk, now=NOW)
    sent = subjects_by_address()
    assert len(sent) == 3000 and SandboxMessage.objects.count() == 3000
    people = dict(Person.objects.for_workspace(workspace).values_list("pk", "email"))
    first_names = dict(Person.objects.for_workspace(workspace).values_list("pk", "first_name"))
    expected = {"A": lambda pk: "Spring sale", "B": lambda pk: f"Last day, {first_names[pk]}",
                "C": lambda pk: "🌷 Spring sale"}  # fmt: skip
    assert all(sent[people[pk]] == expected[v](pk) for pk, v in assigned.items())
    campaign.refresh_from_db()
    assert campaign.status == "sent"  # no test phase: no winner to wait for
    answer = api_client.get(f"{BASE}/{campaign.pk}").json()
    stats = {v["key"]: v["stats"] for v in answer["variants"]}
    assert sum(s["sent"] for s in stats.values()) == 3000
    assert stats["A"]["versus_a"] is None and set(stats["B"]["versus_a"]) == {"open", "click"}


def _open(client, campaign, deliveries, ua=BROWSER):
    for delivery in deliveries:
        response = client.get(tracking.open_url(campaign, delivery.pk).removeprefix(
            "https://herald.test"), HTTP_USER_AGENT=ua)  # fmt: skip
        assert response.status_code == 200
    tracking.flush(now=timezone.now() + timedelta(minutes=5))


def test_a_test_phase_holds_the_rest_until_the_winner_by_human_opens_is_sent_to_them(
    client, api_client, workspace, sandbox, run_jobs
):
    segment = crowd(workspace, 1000)
    body = create(api_client, segment, variants=[
        {"percent": 50}, {"percent": 50, "content": {"subject": "B wins"}},
    ], ab_test={"percent": 20, "metric": "open", "decide_after_hours": 4})  # fmt: skip
    assert body["ab_test"]["percent"] == 20 and body["ab_test"]["winner"] == ""
    campaign = launch(api_client, body["id"], run_jobs)
    assert campaign.ab_decide_at == NOW + timedelta(hours=4)
    rows = Delivery.objects.filter(campaign=campaign)
    held = rows.filter(ab_rest=True)
    assert held.filter(variant="").count() == held.count()
    assert 150 <= rows.filter(ab_rest=False).count() <= 250  # 20% of 1000
    dispatch(campaign.pk, now=NOW)
    test_rows = rows.filter(ab_rest=False)
    assert SandboxMessage.objects.count() == test_rows.count()  # the rest wait
    assert set(held.values_list("status", flat=True)) == {"queued"}
    campaign.refresh_from_db()
    assert campaign.status == "sending"  # not finished while the rest wait
    # B's people open more; machine opens (Apple Mail Privacy Protection) on A are apart
    a_rows = list(test_rows.filter(variant="A"))
    b_rows = list(test_rows.filter(variant="B"))
    _open(client, campaign, a_rows[:10])
    _open(client, campaign, a_rows[10:], ua=MPP)
    _open(client, campaign, b_rows[: len(b_rows) // 2])

    assert campaigns_decide_due(now=NOW + timedelta(hours=3, minutes=59)) == 0
    dispatch(campaign.pk, now=NOW + timedelta(hours=1))
    assert SandboxMessage.objects.count() == test_rows.count()  # still held
    with run_jobs():
        assert campaigns_decide_due(now=NOW + timedelta(hours=4)) == 1
    campaign.refresh_from_db()
    assert campaign.ab_winner == "B" and campaign.ab_decided_at == NOW + timedelta(hours=4)
    assert campaign.ab_decision["by"] == "open"
    assert campaign.ab_decision["results"]["A"]["opened"] == 10  # human opens only
    assert campaign.ab_decision["rest"] == held.count()
    assert set(held.values_list("variant", flat=True)) == {"B"}
    dispatch(campaign.pk, now=NOW + timedelta(hours=4))
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    # everyone once; the rest got B's subject
    assert SandboxMessage.objects.count() == 1000
    assert SandboxMessage.objects.values("address").distinct().count() == 1000
    rest_addresses = set(held.values_list("address", flat=True))
    assert {s for a, s in subjects_by_address().items() if a in rest_addresses} == {"B wins"}
    # the page's stats: the test phase's per variant, the rest apart
    stats = variant_stats(campaign)
    assert stats["rows"][0]["opened"] == 10 and stats["rows"][1]["winner"]
    assert stats["rest"]["sent"] == held.count()
    versus = stats["rows"][1]["versus"]["open"]
    assert versus.difference > 0 and versus.significant
    chart = engagement_over_time(campaign, now=timezone.now() + timedelta(minutes=5))
    lines = {s["label"]: s["data"][-1] for s in chart["series"]}
    assert lines["Variant A: opened"] == pytest.approx(stats["rows"][0]["open_rate"], abs=0.051)
    assert "Rest (B): opened" in lines
    # a second decision is refused
    second = post(api_client, f"/{campaign.pk}/winner")
    assert second.status_code == 409


def test_a_winner_chosen_by_hand_through_the_api(api_client, workspace, sandbox, run_jobs):
    segment = crowd(workspace, 200)
    body = create(api_client, segment, variants=[{"percent": 60}, {"percent": 40}],
                  ab_test={"percent": 50, "metric": "click", "decide_after_hours": 24})  # fmt: skip
    launch(api_client, body["id"], run_jobs)
    unknown = post(api_client, f"/{body['id']}/winner", {"variant": "F"})
    assert unknown.status_code == 422 and "variant" in unknown.content.decode()
    with run_jobs():
        chosen = post(api_client, f"/{body['id']}/winner", {"variant": "A"})
    assert chosen.status_code == 200, chosen.content
    assert chosen.json()["ab_test"]["winner"] == "A"
    assert chosen.json()["ab_test"]["decision"]["by"] == "chosen"
    assert not Delivery.objects.filter(campaign_id=body["id"], variant="").exists()
    plain = create(api_client, segment)
    assert post(api_client, f"/{plain['id']}/winner").status_code == 409


def test_a_test_send_sends_every_variant_or_the_one_asked(api_client, workspace, sandbox):
    PersonFactory(workspace=workspace, external_id="ann", email="ann@example.com")
    segment = crowd(workspace, 3)
    body = create(api_client, segment, variants=[
        {"percent": 50}, {"percent": 50, "content": {"subject": "Other"}}])  # fmt: skip
    both = post(api_client, f"/{body['id']}/test", {"people": ["ann"]})
    assert both.json()["sent"] == 2
    assert sorted(SandboxMessage.objects.values_list("subject", flat=True)) == [
        "Other", "Spring sale"]  # fmt: skip
    one = post(api_client, f"/{body['id']}/test", {"people": ["ann"], "variant": "B"})
    assert one.json()["sent"] == 1
    bad = post(api_client, f"/{body['id']}/test", {"people": ["ann"], "variant": "Z"})
    assert bad.status_code == 422


@pytest.mark.parametrize(("variants", "ab_test", "field"), [
    ([{"percent": 50}, {"percent": 40}], None, "variants"),
    ([{"percent": 100}], None, "variants"),
    ([{"percent": 20}] * 6, None, "variants"),
    ([{"percent": 50}, {"percent": 50, "content": {"reply_to": "x@example.com"}}], None,
     "variants.1.content.reply_to"),
    ([{"percent": 50}, {"percent": 50, "content": {"subject": "{% if %}"}}], None,
     "variants.1.content.subject"),
    ([{"percent": 50}, {"percent": 50, "key": "C"}], None, "variants.1.key"),
    (None, {"percent": 20, "metric": "open", "decide_after_hours": 4}, "ab_test.percent"),
])  # fmt: skip
def test_bad_variants_are_a_422_naming_the_field(api_client, workspace, variants, ab_test,
                                                 field):  # fmt: skip
    segment = crowd(workspace, 1)
    body = {"name": "Spring", "channel": "email", "include": [segment.pk], "content": EMAIL}
    if variants is not None:
        body["variants"] = variants
    if ab_test is not None:
        body["ab_test"] = ab_test
    answer = post(api_client, "", body)
    assert answer.status_code == 422, answer.content
    assert field in answer.content.decode()
    assert not Campaign.objects.for_workspace(workspace).exists()  # nothing half-made


def test_a_test_phase_needs_a_metric_the_channel_tracks(api_client, workspace):
    segment = crowd(workspace, 1)
    two = [{"percent": 50}, {"percent": 50}]
    sms = post(api_client, "", {"name": "T", "channel": "sms", "include": [segment.pk],
                                "content": {"body": "Hi"}, "variants": two,
                                "ab_test": {"percent": 20}})  # fmt: skip
    assert sms.status_code == 422 and "not tracked" in sms.content.decode()
    off = post(api_client, "", {"name": "T", "channel": "email", "include": [segment.pk],
                                "content": EMAIL, "variants": two, "tracking": False,
                                "ab_test": {"percent": 20}})  # fmt: skip
    assert off.status_code == 422 and "tracking is off" in off.content.decode()
    ok = create(api_client, segment, variants=two, ab_test={"percent": 20})
    # turning tracking off later is refused while the test phase needs it
    assert patch(api_client, f"/{ok['id']}", {"tracking": False}).status_code == 422
    # dropping the variants drops the test phase
    dropped = patch(api_client, f"/{ok['id']}", {"variants": []})
    assert dropped.status_code == 200 and dropped.json()["ab_test"] is None


def test_the_two_proportion_test():
    # 100 of 1000 against 130 of 1000: z = 2.10, p = 0.036 (two-sided, pooled)
    p = two_proportion_p(100, 1000, 130, 1000)
    assert p == pytest.approx(math.erfc(2.1027 / math.sqrt(2)), abs=1e-3)
    assert p == pytest.approx(0.0355, abs=5e-4)
    assert compare((100, 1000), (130, 1000), what="open").significant
    same = compare((100, 1000), (105, 1000), what="open")
    assert not same.significant and same.difference == 0.5 and "Not significant" in same.note
    few = compare((1, 10), (3, 10), what="click")
    assert few.p_value is None and "Too few" in few.note


def test_another_workspace_cannot_choose_a_winner(api_client, other_workspace, sandbox):
    theirs = Campaign.objects.create(workspace=other_workspace, name="X", channel="email",
                                     status="sending", variants=[], content=EMAIL)  # fmt: skip
    assert post(api_client, f"/{theirs.pk}/winner").status_code == 404
    theirs.refresh_from_db()
    assert theirs.ab_winner == ""
