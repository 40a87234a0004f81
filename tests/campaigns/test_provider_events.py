"""Provider events -> deliveries (issue 14 item 7), end to end through the real webhook
endpoints: a campaign sent through the Twilio fake (or Mailgun's), the provider's signed
callbacks for its messages, and the ledger: delivered (only from sent), bounced and failed
with the provider's answer, complaints as unsubscribes, the first open and click; never
backwards (a late "delivered" does not undo a bounce); a callback that came before the
send recorded its message id is applied when it is; another workspace's events with the
same message id change nothing; one webhook's batch is mapped in one statement."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from twilio.request_validator import RequestValidator

from accounts.audit import Actor
from campaigns.dispatch.send import dispatch
from campaigns.models import Delivery
from campaigns.selectors import campaign_stats
from campaigns.services import campaign_create, campaign_launch, campaign_launch_run
from channels.providers import webhook_urls
from channels.services import Reported, provider_events_record, provider_set
from tests.campaigns.test_dispatch import _segment
from tests.channels.test_esp import _mailgun_event, _post, mailgun, mailgun_provider  # noqa: F401
from tests.channels.test_sms_transport import SID, TOKEN, FakeTwilio, sid_for, twilio_server  # noqa: F401
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
EMAIL = {"subject": "Spring sale", "text": "Sale on", "html": "<p>Sale on</p>"}
PHONES = ["+14155550101", "+14155550102", "+14155550103", "+14155550104"]


def _launch(workspace, people, *, channel="sms", content=None, name="Spring"):
    segment = _segment(workspace, f"{name} people", people)
    campaign = campaign_create(workspace=workspace, name=name, channel=channel,
                               content=content or {"body": "Sale on"}, include=[segment],
                               actor=ACTOR)  # fmt: skip
    campaign = campaign_launch(campaign=campaign, actor=ACTOR)
    assert campaign_launch_run(launch_id=campaign.launches.get().pk).status == "done"
    return campaign


def _by_phone(campaign, *fields):
    rows = Delivery.objects.filter(campaign=campaign).values_list("person__phone", *fields)
    return {phone: tuple(rest) if len(rest) > 1 else rest[0] for phone, *rest in rows}


@pytest.fixture
def twilio_fake(twilio_server):  # noqa: F811 - the fixture imported above
    twilio_server.clear()
    fake = FakeTwilio()
    twilio_server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    fake.url = twilio_server.url_for("/")
    return fake


@pytest.fixture
def twilio(workspace, twilio_fake):
    return provider_set(
        workspace=workspace, channel="sms", kind="twilio",
        settings={"account_sid": SID, "from": "+14155550100", "base_url": twilio_fake.url},
        secrets={"auth_token": TOKEN}, actor=ACTOR,
    )  # fmt: skip


@pytest.fixture
def people(workspace):
    return [PersonFactory(workspace=workspace, phone=phone) for phone in PHONES]


def _status(client, twilio, to, status, **more):
    """Twilio's status callback for the message to `to`, signed with the auth token."""
    path = f"/hooks/twilio/status/{twilio.hook_id}/"
    params = {"MessageSid": sid_for(to), "MessageStatus": status, "To": to,
              "From": "+14155550100", "AccountSid": SID, **more}  # fmt: skip
    signature = RequestValidator(TOKEN).compute_signature(f"http://testserver{path}", params)
    answer = client.post(path, params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 204, answer.content


def test_twilio_status_callbacks_move_the_campaigns_deliveries_forward_only(
    workspace, people, twilio, client
):
    campaign = _launch(workspace, people)
    dispatch(campaign.pk)
    assert set(_by_phone(campaign, "status").values()) == {"sent"}
    assert _by_phone(campaign, "provider_message_id") == {p: sid_for(p) for p in PHONES}
    ann, bob, cy, dee = PHONES

    _status(client, twilio, ann, "sent")  # Twilio handed it to the carrier: nothing new
    assert _by_phone(campaign, "status")[ann] == "sent"
    _status(client, twilio, ann, "delivered")
    _status(client, twilio, bob, "undelivered", ErrorCode="30005",
            ErrorMessage="Unknown destination handset")  # fmt: skip
    _status(client, twilio, cy, "failed", ErrorCode="30007", ErrorMessage="Carrier filtering")
    statuses = _by_phone(campaign, "status", "delivered_at", "error")
    assert statuses[ann][:1] == ("delivered",) and statuses[ann][1] is not None
    assert statuses[bob][0] == "bounced" and "30005" in statuses[bob][2]
    assert statuses[bob][1] is None
    assert statuses[cy][0] == "failed" and "Carrier filtering" in statuses[cy][2]
    assert statuses[dee] == ("sent", None, "")

    # never backwards: a late "delivered" after the bounce, a retried "delivered"
    _status(client, twilio, bob, "delivered")
    first_delivered = statuses[ann][1]
    _status(client, twilio, ann, "delivered")
    again = _by_phone(campaign, "status", "delivered_at")
    assert again[bob] == ("bounced", None) and again[ann] == ("delivered", first_delivered)
    # "read" (RCS / WhatsApp) is the first open
    _status(client, twilio, ann, "read")
    assert _by_phone(campaign, "opened_at")[ann] is not None

    stats = campaign_stats(campaign)
    assert (stats["sent"], stats["delivered"], stats["bounced"], stats["failed"]) == (2, 1, 1, 1)
    assert stats["opened"] == 1

    # a failure is final too: a later bounce report (and a read) leaves it as it was
    _status(client, twilio, cy, "undelivered", ErrorCode="30005")
    _status(client, twilio, cy, "read")
    final = _by_phone(campaign, "status", "error", "opened_at")[cy]
    assert final[:2] == statuses[cy][::2] and final[2] is not None


def test_a_callback_that_came_before_the_send_recorded_its_id_is_applied_then(
    workspace, people, twilio, client, django_capture_on_commit_callbacks
):
    ann = PHONES[0]
    campaign = _launch(workspace, people[:2])
    # Twilio answered the send and called back before the worker recorded the answer
    _status(client, twilio, ann, "delivered")
    assert _by_phone(campaign, "status")[ann] == "queued"
    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        dispatch(campaign.pk)
    assert after_commit  # applied again once the outcomes are committed
    assert _by_phone(campaign, "status") == {ann: "delivered", PHONES[1]: "sent"}
    assert campaign_stats(campaign)["delivered"] == 1


def test_another_workspaces_events_with_the_same_message_id_change_nothing(
    workspace, other_workspace, people, twilio
):
    campaign = _launch(workspace, people[:1])
    dispatch(campaign.pk)
    theirs = provider_set(workspace=other_workspace, channel="sms", kind="sandbox",
                          settings={}, secrets={}, actor=ACTOR)  # fmt: skip
    provider_events_record(provider=theirs, events=[
        Reported(kind="bounced", provider_message_id=sid_for(PHONES[0]), reason="x"),
    ])  # fmt: skip
    assert _by_phone(campaign, "status") == {PHONES[0]: "sent"}
    # and an email event with an SMS message's id (another channel) changes nothing either
    email = provider_set(workspace=workspace, channel="email", kind="sandbox", settings={},
                         secrets={}, actor=ACTOR)  # fmt: skip
    provider_events_record(provider=email, events=[
        Reported(kind="complained", provider_message_id=sid_for(PHONES[0])),
    ])  # fmt: skip
    assert _by_phone(campaign, "unsubscribed_at") == {PHONES[0]: None}


def test_mailgun_webhooks_mark_deliveries_opened_clicked_unsubscribed_bounced(
    workspace,
    client,
    mailgun,  # noqa: F811 - the fixture imported above
):
    provider = mailgun_provider(workspace, mailgun.api_url)
    hook = webhook_urls(provider, "http://testserver")["tracking"]
    people = [PersonFactory(workspace=workspace, email=f"{n}@example.com")
              for n in ("ann", "bob", "cy")]  # fmt: skip
    campaign = _launch(workspace, people, channel="email", content=EMAIL)
    dispatch(campaign.pk)
    ids = dict(
        Delivery.objects.filter(campaign=campaign).values_list("address", "provider_message_id")
    )
    assert all(i.startswith("<") for i in ids.values()), ids
    now = time.time()

    def event(kind, address, n, **more):
        body = {
            "event": kind,
            "id": f"evt-{kind}-{address}-{n}",
            "recipient": address,
            "timestamp": now + n,
            "message": {"headers": {"message-id": ids[address].strip("<>")}},
            **more,
        }
        answer = _post(client, hook, _mailgun_event(body))
        assert answer.status_code == 200, answer.content

    event("delivered", "ann@example.com", 0)
    event("opened", "ann@example.com", 1)
    event("opened", "ann@example.com", 5)  # a second open: the first stays
    event("clicked", "ann@example.com", 2, url="https://acme.test/sale")
    event("complained", "ann@example.com", 3)
    event("failed", "bob@example.com", 0, severity="permanent", reason="bounce",
          **{"delivery-status": {"code": 550, "message": "5.1.1 No such mailbox",
                                 "description": ""}})  # fmt: skip
    event("delivered", "bob@example.com", 4)  # late, out of order: the bounce stays
    rows = {d.address: d for d in Delivery.objects.filter(campaign=campaign)}
    ann, bob, cy = rows["ann@example.com"], rows["bob@example.com"], rows["cy@example.com"]
    assert ann.status == "delivered" and ann.delivered_at is not None
    assert ann.opened_at < ann.clicked_at < ann.unsubscribed_at  # each the first of its kind
    assert (ann.opened_at - ann.delivered_at).total_seconds() == pytest.approx(1, abs=0.01)
    assert bob.status == "bounced" and "No such mailbox" in bob.error and bob.delivered_at is None
    assert cy.status == "sent"
    stats = campaign_stats(campaign)
    assert (stats["delivered"], stats["bounced"], stats["opened"], stats["clicked"],
            stats["unsubscribed"]) == (1, 1, 1, 1, 1)  # fmt: skip


def test_a_webhooks_batch_is_mapped_in_one_statement_whatever_its_size(workspace):
    sandbox = provider_set(workspace=workspace, channel="sms", kind="sandbox", settings={},
                           secrets={}, actor=ACTOR)  # fmt: skip
    people = [PersonFactory(workspace=workspace, phone=f"+1415555{n:04d}") for n in range(60)]
    campaign = _launch(workspace, people)
    dispatch(campaign.pk)
    pids = list(Delivery.objects.filter(campaign=campaign).order_by("id")
                .values_list("provider_message_id", flat=True))  # fmt: skip

    def record(batch):
        with CaptureQueriesContext(connection) as queries:
            provider_events_record(provider=sandbox, events=[
                Reported(kind="delivered", provider_message_id=p) for p in batch])  # fmt: skip
        return len(queries)

    assert record(pids[:5]) == record(pids[5:])
    assert campaign_stats(campaign)["delivered"] == 60
