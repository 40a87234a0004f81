"""Email through an ESP with django-anymail, against a local fake of Mailgun's HTTP API
(pytest-httpserver), and the ESPs' webhooks as they really arrive: Mailgun's signed
tracking events (a hard bounce and a complaint go on Do Not Contact; a retried webhook
counts once; a bad signature is 403 and changes nothing) and Postmark's inbound email
(the event "Email Received" on the person it is from)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from werkzeug import Response

from accounts.audit import Actor
from channels.models import ProviderEvent
from channels.providers import transport_for, webhook_urls
from channels.services import provider_set
from channels.transports.base import OutboundMessage
from channels.transports.esp import EspTransport
from people.models import DoNotContact, Event
from tests.factories import PersonFactory

KEY = "key-0123456789abcdef"
SIGNING = "whsec-mailgun-signing-key"
ADMIN = Actor.of_system("test")


def mailgun_provider(workspace, api_url):
    return provider_set(
        workspace=workspace, channel="email", kind="anymail",
        settings={"esp": "mailgun", "from_email": "news@acme.test", "from_name": "Acme",
                  "api_url": api_url},
        secrets={"api_key": KEY, "webhook_signing_key": SIGNING}, actor=ADMIN,
    )  # fmt: skip


@pytest.fixture
def mailgun(httpserver):
    """Mailgun's messages endpoint: checks Basic auth api:<key>, answers as Mailgun does."""
    sent = []

    def messages(request):
        expected = "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response("Forbidden", status=401)
        to = request.form.get("to", "")
        if to.startswith("down@"):
            return Response('{"message": "Internal error"}', status=500)
        if to.startswith("bad@"):
            return Response('{"message": "to parameter is not a valid address"}', status=400)
        sent.append(request.form.to_dict(flat=False))
        return Response(
            json.dumps({"id": f"<20261203.{len(sent)}@acme.test>", "message": "Queued."}),
            content_type="application/json",
        )

    httpserver.expect_request("/v3/acme.test/messages", method="POST").respond_with_handler(
        messages
    )
    httpserver.sent = sent
    httpserver.api_url = httpserver.url_for("/v3")
    return httpserver


def test_an_esp_account_sends_through_its_api_and_errors_are_classified(db, workspace, mailgun):
    provider = mailgun_provider(workspace, mailgun.api_url)
    assert provider.settings["sender_domain"] == "acme.test"  # from the From address
    with transport_for(provider) as transport:
        outcomes = transport.send_many([
            OutboundMessage("email", "ada@example.com", subject="Hello", text="Hi Ada",
                            html="<p>Hi Ada</p>", reference="delivery-7",
                            headers={"List-Unsubscribe": "<https://h.test/u/x>"}),
            OutboundMessage("email", "down@example.com", subject="Hello", text="Hi"),
            OutboundMessage("email", "bad@example.com", subject="Hello", text="Hi"),
        ])  # fmt: skip
    ok, down, bad = outcomes
    assert ok.provider_message_id == "<20261203.1@acme.test>"
    assert (down.kind, bad.kind) == ("temporary", "permanent")
    (form,) = mailgun.sent
    assert form["to"] == ["ada@example.com"] and form["from"] == ["Acme <news@acme.test>"]
    assert form["html"] == ["<p>Hi Ada</p>"] and form["text"] == ["Hi Ada"]
    assert form["v:herald_ref"] == ["delivery-7"]  # echoed back in its webhooks
    assert form["h:List-Unsubscribe"] == ["<https://h.test/u/x>"]
    assert form["o:tracking-clicks"] == ["no"]  # Herald tracks links itself


def test_a_wrong_key_and_no_server_are_classified(mailgun):
    wrong = EspTransport(esp="mailgun", from_email="news@acme.test",
                         settings={"sender_domain": "acme.test", "api_url": mailgun.api_url},
                         secrets={"api_key": "key-wrong"})  # fmt: skip
    with wrong:
        assert wrong.send_many([OutboundMessage("email", "a@example.com", text="x")])[0].kind == (
            "permanent"
        )
    gone = EspTransport(esp="mailgun", from_email="news@acme.test",
                        settings={"sender_domain": "acme.test",
                                  "api_url": "http://127.0.0.1:9/v3"},
                        secrets={"api_key": KEY}, timeout=2)  # fmt: skip
    with gone:
        assert gone.send_many([OutboundMessage("email", "a@example.com", text="x")])[0].kind == (
            "temporary"
        )


def test_bad_esp_settings_name_the_field(db, workspace):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        provider_set(workspace=workspace, channel="email", kind="anymail",
                     settings={"esp": "mailgun", "from_email": "nope"},
                     secrets={"api_key": KEY}, actor=ADMIN)  # fmt: skip
    assert set(caught.value.message_dict) == {"from_email", "webhook_signing_key"}
    with pytest.raises(ValidationError) as caught:
        provider_set(workspace=workspace, channel="email", kind="anymail",
                     settings={"esp": "carrier-pigeon", "from_email": "news@acme.test"},
                     secrets={}, actor=ADMIN)  # fmt: skip
    assert "esp" in caught.value.message_dict


def _mailgun_event(event: dict, key=SIGNING) -> dict:
    # Mailgun's token is unique per webhook (Anymail's event id); a retry repeats it
    timestamp, token = str(int(time.time())), hashlib.sha256(event["id"].encode()).hexdigest()
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {"signature": {"timestamp": timestamp, "token": token,
                          "signature": signature.hexdigest()},
            "event-data": event}  # fmt: skip


def _failed(recipient, severity="permanent", event_id="evt-1"):
    return {
        "event": "failed", "severity": severity, "id": event_id, "recipient": recipient,
        "timestamp": time.time(), "reason": "bounce" if severity == "permanent" else "generic",
        "message": {"headers": {"message-id": "20261203.1@acme.test"}},
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist",
                            "description": ""},
        "user-variables": {"herald_ref": "delivery-7"},
    }  # fmt: skip


def _post(client, url, body):
    # the URL carries its basic auth (herald:<secret>@host) as pasted into the ESP
    scheme, rest = url.split("://", 1)
    auth, _, host_path = rest.partition("@")
    path = "/" + host_path.split("/", 1)[1]
    return client.post(
        path, json.dumps(body), content_type="application/json",
        headers={"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()},
    )  # fmt: skip


def test_mailgun_tracking_events_are_recorded_and_hard_bounces_suppressed(
    db, client, workspace, other_workspace
):
    provider = mailgun_provider(workspace, "https://api.mailgun.net/v3")
    urls = webhook_urls(provider, "http://testserver")
    answer = _post(client, urls["tracking"], _mailgun_event(_failed("ada@example.com")))
    assert answer.status_code == 200, answer.content
    event = ProviderEvent.objects.for_workspace(workspace).get()
    assert (event.kind, event.provider_message_id, event.address) == (
        "bounced",
        "<20261203.1@acme.test>",  # as the send answered it (Anymail adds the brackets)
        "ada@example.com",
    )
    assert "does not exist" in event.reason
    dnc = DoNotContact.objects.for_workspace(workspace).get()
    assert (dnc.channel, dnc.address, dnc.source) == ("email", "ada@example.com", "bounce")
    assert not DoNotContact.objects.for_workspace(other_workspace).exists()
    # Mailgun retries a webhook it got no 200 for: the event is recorded once
    _post(client, urls["tracking"], _mailgun_event(_failed("ada@example.com")))
    assert ProviderEvent.objects.for_workspace(workspace).count() == 1
    # a soft bounce (temporary) is recorded and does not suppress
    _post(client, urls["tracking"],
          _mailgun_event(_failed("bob@example.com", "temporary", "evt-2")))  # fmt: skip
    assert ProviderEvent.objects.for_workspace(workspace).get(address="bob@example.com").kind == (
        "deferred"
    )
    complaint = {"event": "complained", "id": "evt-3", "recipient": "cy@example.com",
                 "timestamp": time.time(),
                 "message": {"headers": {"message-id": "20261203.2@acme.test"}}}  # fmt: skip
    _post(client, urls["tracking"], _mailgun_event(complaint))
    assert set(DoNotContact.objects.for_workspace(workspace).values_list("address", flat=True)) == {
        "ada@example.com",
        "cy@example.com",
    }


def test_a_badly_signed_or_unauthenticated_webhook_is_403_and_changes_nothing(
    db, client, workspace
):
    provider = mailgun_provider(workspace, "https://api.mailgun.net/v3")
    urls = webhook_urls(provider, "http://testserver")
    forged = _mailgun_event(_failed("ada@example.com"), key="not-the-key")
    assert _post(client, urls["tracking"], forged).status_code == 403
    no_auth = urls["tracking"].replace(urls["tracking"].split("//")[1].split("@")[0], "x:y")
    assert _post(client, no_auth, _mailgun_event(_failed("ada@example.com"))).status_code == 403
    assert not ProviderEvent.objects.exists() and not DoNotContact.objects.exists()
    unknown = urls["tracking"].replace(provider.hook_id, "no-such-hook")
    assert _post(client, unknown, _mailgun_event(_failed("a@example.com"))).status_code == 404
    garbled = _post(client, urls["tracking"], {"signature": "?"})
    assert garbled.status_code in (400, 403) and not ProviderEvent.objects.exists()


def test_postmark_inbound_email_becomes_an_event_on_the_person_it_is_from(db, client, workspace):
    provider = provider_set(
        workspace=workspace, channel="email", kind="anymail",
        settings={"esp": "postmark", "from_email": "news@acme.test"},
        secrets={"api_key": "pm-server-token"}, actor=ADMIN,
    )  # fmt: skip
    ada = PersonFactory(workspace=workspace, email="ada@example.com")
    PersonFactory(workspace=workspace, email="bob@example.com")
    raw = ("From: Ada <Ada@Example.com>\r\nTo: replies@acme.test\r\nSubject: Re: Spring sale\r\n"
           "Message-ID: <m1@example.com>\r\n\r\nYes please, tell me more.\r\n")  # fmt: skip
    body = {"RawEmail": raw, "MessageID": "pm-inbound-1", "From": "Ada@Example.com",
            "FromFull": {"Email": "Ada@Example.com", "Name": "Ada"}, "Subject": "Re: Spring sale",
            "Headers": []}  # fmt: skip
    urls = webhook_urls(provider, "http://testserver")
    assert _post(client, urls["inbound"], body).status_code == 200
    assert _post(client, urls["inbound"], body).status_code == 200  # retried: once
    (event,) = Event.objects.for_workspace(workspace)
    assert event.person_id == ada.pk and event.name == "Email Received"
    assert event.properties["subject"] == "Re: Spring sale"
    assert "Yes please" in event.properties["body"]
