"""Bad input end to end (issue 14, "Faults and bad input"): a 1 MB body, HTML with
scripts, a variable missing for some people, the audience's segments deleted mid-launch,
a provider answering 5xx for a minute. A clear message or a retried send; never a 500,
never a half-launched campaign."""

from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Response

from accounts.audit import Actor
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_create, campaign_launch, campaign_launch_run
from channels.list_services import channel_audience_create, channel_segment_add
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from segments.services import segment_create, segment_delete, static_members_change
from tests.channels.test_sms_transport import SID, TOKEN, FakeTwilio, twilio_server  # noqa: F401
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
BASE = "/api/v1/campaigns"


def _post(client, path, body):
    return client.post(f"{BASE}{path}", body, content_type="application/json")


def _static(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    return segment


@pytest.fixture
def sandbox(workspace):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=ACTOR)  # fmt: skip


@pytest.fixture
def people(workspace):
    return [
        PersonFactory(workspace=workspace, external_id="ann", first_name="Ann",
                      email="ann@example.com", attributes={"plan": "pro"}),
        PersonFactory(workspace=workspace, external_id="bob", first_name="",
                      email="bob@example.com", attributes={}),
    ]  # fmt: skip


def test_a_body_over_one_megabyte_is_a_422_and_nothing_is_stored(api_client, workspace):
    huge = "x" * (1_048_576 + 1)
    answer = _post(api_client, "", {"name": "Huge", "channel": "email",
                                    "content": {"subject": "Hi", "text": huge}})  # fmt: skip
    assert answer.status_code == 422, answer.content[:300]
    assert answer.json()["errors"][0]["loc"] == ["body", "text"]
    assert "at most 1 MB" in answer.json()["errors"][0]["msg"]
    assert not Campaign.objects.for_workspace(workspace).exists()


def test_html_with_scripts_is_stored_and_sent_clean(api_client, workspace, people, sandbox,
                                                    run_jobs):  # fmt: skip
    segment = _static(workspace, "All", people)
    html = ('<p onclick="steal()">Hello</p><script>alert(1)</script>'
            '<a href="javascript:evil()">link</a><img src=x onerror="boom()">')  # fmt: skip
    body = {"name": "Dirty", "channel": "email", "include": [segment.pk],
            "content": {"subject": "Hi", "text": "t", "html": html}}  # fmt: skip
    created = _post(api_client, "", body)
    assert created.status_code == 201, created.content
    stored = Campaign.objects.get(pk=created.json()["id"]).content["html"]
    for bad in ("<script", "onclick", "javascript:", "onerror"):
        assert bad not in stored
    assert "Hello" in stored
    with run_jobs():  # the launch job and its senders, as the workers run them
        launched = _post(api_client, f"/{created.json()['id']}/launch", {})
    assert launched.status_code == 202
    sent = list(SandboxMessage.objects.for_workspace(workspace).values_list("html", flat=True))
    assert len(sent) == 2 and all("<script" not in h and "onclick" not in h for h in sent)


def test_a_variable_missing_for_some_people_renders_empty_or_its_default(workspace, people,
                                                                         sandbox):  # fmt: skip
    segment = _static(workspace, "All", people)
    content = {"subject": "Hi {{ person.first_name | default: 'friend' }}",
               "text": "Plan: [{{ person.attributes.plan }}]"}  # fmt: skip
    campaign = campaign_create(workspace=workspace, name="Gaps", channel="email",
                               content=content, include=[segment], actor=ACTOR)  # fmt: skip
    launch = campaign_launch(campaign=campaign, actor=ACTOR).launches.get()
    campaign_launch_run(launch_id=launch.pk)
    dispatch(campaign.pk)
    sent = dict(SandboxMessage.objects.for_workspace(workspace).values_list("address", "text"))
    subjects = dict(
        SandboxMessage.objects.for_workspace(workspace).values_list("address", "subject")
    )
    assert sent == {"ann@example.com": "Plan: [pro]", "bob@example.com": "Plan: []"}
    assert subjects == {"ann@example.com": "Hi Ann", "bob@example.com": "Hi friend"}


def test_the_segments_deleted_mid_launch_fail_the_launch_cleanly(api_client, workspace, people,
                                                                 sandbox):  # fmt: skip
    """The audience cannot be deleted while a campaign names it (a 409 naming the
    campaign); its segment is deleted after the launch was asked for, before the worker
    froze the recipients: the campaign fails with the reason, no delivery is written,
    nothing is sent."""
    segment = _static(workspace, "Buyers", people)
    entry = channel_segment_add(workspace=workspace, channel="email", segment=segment,
                                actor=ACTOR)  # fmt: skip
    audience = channel_audience_create(workspace=workspace, channel="email",
                                       data={"name": "Buyers", "include": [entry.pk]},
                                       actor=ACTOR)  # fmt: skip
    campaign = campaign_create(workspace=workspace, name="Mid", channel="email",
                               content={"subject": "Hi", "text": "t"}, audience=audience,
                               actor=ACTOR)  # fmt: skip
    launch = campaign_launch(campaign=campaign, actor=ACTOR).launches.get()
    # the audience is refused deletion while a campaign names it, with who uses it
    refused = api_client.delete(f"/api/v1/channels/email/audiences/{audience.pk}")
    assert refused.status_code == 409 and "Mid" in refused.json()["detail"]
    segment_delete(segment=segment, actor=ACTOR)
    campaign_launch_run(launch_id=launch.pk)
    campaign.refresh_from_db()
    assert campaign.status == "failed"
    assert "recipient" in campaign.status_reason.lower()
    assert not Delivery.objects.filter(campaign=campaign).exists()
    assert not SandboxMessage.objects.for_workspace(workspace).exists()
    page = api_client.get(f"{BASE}/{campaign.pk}")
    assert page.status_code == 200 and page.json()["status"] == "failed"


class FlakyTwilio(FakeTwilio):
    """Twilio answering 503 while `down`, as during an outage."""

    down = True

    def answer(self, request):
        if self.down:
            with self.lock:
                self.requests.append((request.form.to_dict(), None))
            return Response('{"code": 20503, "message": "Service Unavailable", "status": 503}',
                            status=503, content_type="application/json")  # fmt: skip
        return super().answer(request)


def test_a_provider_down_for_a_minute_is_retried_with_backoff_then_sent(
    workspace,
    twilio_server,  # noqa: F811
):
    twilio_server.clear()
    fake = FlakyTwilio()
    twilio_server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    provider_set(workspace=workspace, channel="sms", kind="twilio",
                 settings={"account_sid": SID, "from": "+14155550100",
                           "base_url": twilio_server.url_for("/")},
                 secrets={"auth_token": TOKEN}, actor=ACTOR)  # fmt: skip
    people = [PersonFactory(workspace=workspace, phone=f"+1415555{i:04d}") for i in range(3)]
    segment = _static(workspace, "Texts", people)
    campaign = campaign_create(workspace=workspace, name="Outage", channel="sms",
                               content={"body": "Hi"}, include=[segment], actor=ACTOR)  # fmt: skip
    launch = campaign_launch(campaign=campaign, actor=ACTOR).launches.get()
    campaign_launch_run(launch_id=launch.pk)
    t0 = timezone.now()
    dispatch(campaign.pk, now=t0)  # the provider is down: every message waits for a retry
    statuses = set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {"queued"}
    retry_at = Delivery.objects.filter(campaign=campaign).values_list("next_attempt_at", flat=True)
    assert all(at >= t0 + timedelta(seconds=30) for at in retry_at)
    dispatch(campaign.pk, now=t0 + timedelta(seconds=10))  # not due yet: nothing is sent
    assert len(fake.requests) == 3
    dispatch(campaign.pk, now=t0 + timedelta(seconds=31))  # still down, a longer wait
    assert len(fake.requests) == 6
    assert Campaign.objects.get(pk=campaign.pk).status == "sending"
    fake.down = False  # the minute is over
    dispatch(campaign.pk, now=t0 + timedelta(minutes=3))
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent"
    }
    assert Delivery.objects.filter(campaign=campaign, attempts=3).count() == 3
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"
