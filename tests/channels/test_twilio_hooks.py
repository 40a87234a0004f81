"""Twilio calling Herald back, signed as Twilio signs (X-Twilio-Signature computed with the
account's auth token by the twilio package): status callbacks become provider events (a
dead number or an opted-out one goes on Do Not Contact), incoming messages become the
event "SMS Received" on the person with the number, STOP and its synonyms put it on Do
Not Contact and START takes it off. A bad signature: 403 and nothing changed."""

import pytest
from twilio.request_validator import RequestValidator

from accounts.audit import Actor
from channels.models import ProviderEvent
from channels.providers import transport_for
from channels.services import provider_set, sms_keyword
from people.models import DoNotContact, Event
from tests.factories import PersonFactory

SID = "AC" + "1" * 32
TOKEN = "twilio-auth-token-0123456789"
ADMIN = Actor.of_system("test")


@pytest.fixture
def twilio(db, workspace):
    return provider_set(
        workspace=workspace, channel="sms", kind="twilio",
        settings={"account_sid": SID, "from": "+14155550100"}, secrets={"auth_token": TOKEN},
        actor=ADMIN,
    )  # fmt: skip


def _signed_post(client, path, params, token=TOKEN):
    url = f"http://testserver{path}"
    signature = RequestValidator(token).compute_signature(url, params)
    return client.post(path, params, headers={"X-Twilio-Signature": signature})


def _status(twilio, client, sid, status, **more):
    params = {"MessageSid": sid, "MessageStatus": status, "To": "+14155550101",
              "From": "+14155550100", "AccountSid": SID, **more}  # fmt: skip
    return _signed_post(client, f"/hooks/twilio/status/{twilio.hook_id}/", params)


def _incoming(twilio, client, body, sid, sender="+14155550101"):
    params = {"MessageSid": sid, "From": sender, "To": "+14155550100", "Body": body,
              "AccountSid": SID, "NumMedia": "0"}  # fmt: skip
    return _signed_post(client, f"/hooks/twilio/inbound/{twilio.hook_id}/", params)


def test_status_callbacks_are_recorded_once_and_dead_numbers_suppressed(twilio, client, workspace):
    assert _status(twilio, client, "SM1", "sent").status_code == 204
    assert _status(twilio, client, "SM1", "delivered").status_code == 204
    assert _status(twilio, client, "SM1", "delivered").status_code == 204  # a retry
    events = ProviderEvent.objects.for_workspace(workspace).order_by("id")
    assert [(e.kind, e.provider_message_id) for e in events] == [
        ("sent", "SM1"), ("delivered", "SM1")
    ]  # fmt: skip
    assert not DoNotContact.objects.exists()
    _status(twilio, client, "SM2", "undelivered", ErrorCode="30005",
            ErrorMessage="Unknown destination handset")  # fmt: skip
    bounced = ProviderEvent.objects.for_workspace(workspace).get(provider_message_id="SM2")
    assert bounced.kind == "bounced" and "30005" in bounced.reason
    dnc = DoNotContact.objects.for_workspace(workspace).get()
    assert (dnc.channel, dnc.address, dnc.source) == ("sms", "+14155550101", "bounce")
    _status(twilio, client, "SM3", "failed", ErrorCode="30007")  # carrier filtering
    assert DoNotContact.objects.count() == 1


def test_a_bad_signature_is_403_and_changes_nothing(twilio, client):
    params = {"MessageSid": "SM9", "MessageStatus": "undelivered", "ErrorCode": "30005",
              "To": "+14155550101"}  # fmt: skip
    path = f"/hooks/twilio/status/{twilio.hook_id}/"
    assert _signed_post(client, path, params, token="not-the-token").status_code == 403
    assert client.post(path, params).status_code == 403  # no signature at all
    # signed for other parameters than those posted
    url = f"http://testserver{path}"
    signature = RequestValidator(TOKEN).compute_signature(url, {**params, "ErrorCode": ""})
    forged = client.post(path, params, headers={"X-Twilio-Signature": signature})
    assert forged.status_code == 403
    inbound = f"/hooks/twilio/inbound/{twilio.hook_id}/"
    assert client.post(inbound, {"From": "+14155550101", "Body": "STOP"}).status_code == 403
    assert not ProviderEvent.objects.exists() and not DoNotContact.objects.exists()
    assert client.post("/hooks/twilio/status/nope/", params).status_code == 404
    assert _signed_post(client, path, {"To": "+1"}).status_code == 400  # no MessageSid


def test_incoming_messages_become_events_and_keywords_change_do_not_contact(
    twilio, client, workspace, other_workspace
):
    ada = PersonFactory(workspace=workspace, phone="+14155550101")
    PersonFactory(workspace=other_workspace, phone="+14155550101")
    answer = _incoming(twilio, client, "Is the sale still on?", "SMa")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/xml")
    assert b"<Response></Response>" in answer.content  # no reply: Twilio answers keywords
    _incoming(twilio, client, "Is the sale still on?", "SMa")  # Twilio retried it
    (event,) = Event.objects.for_workspace(workspace)
    assert (event.person_id, event.name) == (ada.pk, "SMS Received")
    assert event.properties["body"] == "Is the sale still on?" and event.properties["keyword"] == ""
    assert not Event.objects.for_workspace(other_workspace).exists()

    _incoming(twilio, client, " stop ", "SMb")
    dnc = DoNotContact.objects.for_workspace(workspace).get()
    assert (dnc.channel, dnc.address, dnc.source) == ("sms", "+14155550101", "unsubscribe")
    assert not DoNotContact.objects.for_workspace(other_workspace).exists()
    assert Event.objects.for_workspace(workspace).count() == 2  # the STOP is an event too
    _incoming(twilio, client, "START", "SMc")
    assert not DoNotContact.objects.for_workspace(workspace).exists()
    _incoming(twilio, client, "Unsubscribe", "SMd", sender="+14155550177")  # nobody has it
    assert DoNotContact.objects.for_workspace(workspace).get().address == "+14155550177"


@pytest.mark.parametrize(
    ("body", "keyword"),
    [("STOP", "STOP"), ("stopall", "STOPALL"), ("Quit.", "QUIT"), ("end", "END"),
     ("cancel", "CANCEL"), ("unstop", "UNSTOP"), ("Start!", "START"),
     ("please stop texting me", ""), ("stopp", ""), ("", "")],
)  # fmt: skip
def test_keywords_are_whole_messages(body, keyword):
    assert sms_keyword(body) == keyword


def test_the_transport_asks_for_status_callbacks_at_the_public_url(twilio, settings):
    settings.PUBLIC_BASE_URL = "https://herald.example.com"
    with transport_for(twilio) as transport:
        assert transport.status_callback == (
            f"https://herald.example.com/hooks/twilio/status/{twilio.hook_id}/"
        )
    settings.PUBLIC_BASE_URL = ""
    with transport_for(twilio) as transport:
        assert transport.status_callback == ""
