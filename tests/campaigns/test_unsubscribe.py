"""Unsubscribe (issue 14 item 6, shared/API.md "Tracking, unsubscribe"): every campaign
email carries List-Unsubscribe (the HTTPS one-click URL, and a mailto when a mailbox is
configured) and List-Unsubscribe-Post, proven on the wire of a real SMTP server; the
token of the header works: GET /u/<token> shows a public page and changes nothing, POST
(RFC 8058's one-click body, no CSRF token, or the page's button) puts the address on Do
Not Contact at once, audited, idempotently; anything that is not a token of ours is a 404
that changes nothing, never a 500. SMS bodies end with the workspace's opt-out line, and
a recipient who replies STOP is skipped by the next campaign."""

import re
from email import message_from_bytes, policy
from urllib.parse import unquote

import pytest
from django.core import signing
from django.test import Client
from twilio.request_validator import RequestValidator

from accounts.audit import Actor
from accounts.forms import WorkspaceForm
from accounts.models import AuditEntry, Workspace
from campaigns import unsubscribe
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from campaigns.selectors import campaign_stats
from campaigns.services import (
    campaign_create,
    campaign_launch,
    campaign_launch_run,
    campaign_test_send,
)
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import DoNotContact
from tests.campaigns.test_dispatch import _segment
from tests.channels.test_sms_transport import SID, TOKEN, FakeTwilio, twilio_server  # noqa: F401
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
EMAIL = {"subject": "Spring sale", "text": "Sale on", "html": "<p>Sale on</p>"}
ONE_CLICK = "List-Unsubscribe=One-Click"
BASE = "https://herald.example.com"


def _launch(workspace, people, *, channel="email", content=None, name="Spring"):
    segment = _segment(workspace, f"{name} people", people)
    campaign = campaign_create(workspace=workspace, name=name, channel=channel,
                               content=content or EMAIL, include=[segment],
                               actor=ACTOR)  # fmt: skip
    campaign = campaign_launch(campaign=campaign, actor=ACTOR)
    assert campaign_launch_run(launch_id=campaign.launches.get().pk).status == "done"
    return campaign


def _sandbox(workspace, channel="email"):
    return provider_set(workspace=workspace, channel=channel, kind="sandbox", settings={},
                        secrets={}, actor=ACTOR)  # fmt: skip


def _path(header: str) -> str:
    """The /u/<token> path of a List-Unsubscribe header's HTTPS URL."""
    match = re.match(rf"<{re.escape(BASE)}(/u/[^>]+)>", header)
    assert match, header
    return match.group(1)


def _reasons(campaign):
    return dict(Delivery.objects.filter(campaign=campaign, is_test=False)
                .values_list("person__email", "reason"))  # fmt: skip


@pytest.fixture(autouse=True)
def _public_base(settings):
    settings.PUBLIC_BASE_URL = BASE


def test_a_sent_email_carries_one_click_headers_whose_token_unsubscribes(
    workspace, smtp_server, settings
):
    provider_set(workspace=workspace, channel="email", kind="smtp",
                 settings={"host": "127.0.0.1", "port": smtp_server.port, "security": "none",
                           "from_email": "news@acme.test"}, secrets={}, actor=ACTOR)  # fmt: skip
    ann = PersonFactory(workspace=workspace, email="ann@example.com")
    bob = PersonFactory(workspace=workspace, email="bob@example.com")
    campaign = _launch(workspace, [ann, bob])
    dispatch(campaign.pk)
    wire = {to: message_from_bytes(raw, policy=policy.default)
            for (to,), raw in smtp_server.received}  # fmt: skip
    assert set(wire) == {"ann@example.com", "bob@example.com"}
    for message in wire.values():
        assert message["List-Unsubscribe-Post"] == ONE_CLICK
        assert "mailto:" not in message["List-Unsubscribe"]  # no mailbox configured
    path = _path(wire["ann@example.com"]["List-Unsubscribe"])
    assert path != _path(wire["bob@example.com"]["List-Unsubscribe"])

    # GET (a mail scanner, the person reading) shows the page and changes nothing
    client = Client(enforce_csrf_checks=True)  # no session, no CSRF token: a mail client
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Acme" in html and "a•••@example.com" in html and "ann@example.com" not in html
    assert 'method="post"' in html and not DoNotContact.objects.exists()

    # RFC 8058: the mail client's one-click POST
    answer = client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200 and "unsubscribed" in answer.content.decode()
    entry = DoNotContact.objects.for_workspace(workspace).get()
    assert (entry.channel, entry.address, entry.source) == ("email", "ann@example.com",
                                                            "unsubscribe")  # fmt: skip
    delivery = Delivery.objects.get(campaign=campaign, person=ann)
    first = delivery.unsubscribed_at
    assert first is not None
    (audit,) = AuditEntry.objects.for_workspace(workspace).filter(action="dnc.unsubscribe")
    assert audit.object_id == delivery.pk and audit.actor_system == "unsubscribe link"
    assert audit.summary["one_click"] is True and audit.summary["campaign"] == campaign.pk
    assert "ann@example.com" not in str(audit.summary)  # ids and counts, never the address

    # idempotent: again, 200, nothing more
    again = client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert again.status_code == 200
    delivery.refresh_from_db()
    assert delivery.unsubscribed_at == first
    assert AuditEntry.objects.filter(action="dnc.unsubscribe").count() == 1
    assert DoNotContact.objects.count() == 1
    assert campaign_stats(campaign)["unsubscribed"] == 1
    assert "was unsubscribed already" in client.get(path).content.decode()

    # the next campaign skips Ann
    smtp_server.received.clear()
    second = _launch(workspace, [ann, bob], name="Summer")
    assert _reasons(second) == {"ann@example.com": "dnc", "bob@example.com": ""}
    dispatch(second.pk)
    assert [to for (to,), _ in smtp_server.received] == ["bob@example.com"]


def test_the_pages_button_unsubscribes_and_thanks(workspace, client):
    _sandbox(workspace)
    cy = PersonFactory(workspace=workspace, email="Cy@Example.com")
    campaign = _launch(workspace, [cy])
    dispatch(campaign.pk)
    message = SandboxMessage.objects.for_workspace(workspace).get()
    path = _path(message.headers["List-Unsubscribe"])
    assert message.headers["List-Unsubscribe-Post"] == ONE_CLICK
    page = client.get(path)
    assert b"Unsubscribe from Acme" in page.content
    done = client.post(path, {"confirm": "1"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    assert DoNotContact.objects.for_workspace(workspace).get().address == "cy@example.com"
    audit = AuditEntry.objects.for_workspace(workspace).get(action="dnc.unsubscribe")
    assert audit.summary["one_click"] is False
    # the person's own START (or an operator) lifting the block: the link works again
    DoNotContact.objects.all().delete()
    assert b"Unsubscribe from Acme" in client.get(path).content
    client.post(path, {"confirm": "1"})
    assert DoNotContact.objects.for_workspace(workspace).count() == 1


def test_a_test_sends_token_works_too(workspace, client):
    _sandbox(workspace)
    dee = PersonFactory(workspace=workspace, email="dee@example.com")
    segment = _segment(workspace, "Staff", [dee])
    campaign = campaign_create(workspace=workspace, name="Draft", channel="email",
                               content=EMAIL, include=[segment], actor=ACTOR)  # fmt: skip
    assert campaign_test_send(campaign=campaign, segment=segment, actor=ACTOR)["sent"] == 1
    message = SandboxMessage.objects.for_workspace(workspace).get()
    path = _path(message.headers["List-Unsubscribe"])
    answer = client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert DoNotContact.objects.for_workspace(workspace).get().address == "dee@example.com"
    assert Delivery.objects.get(campaign=campaign, is_test=True).unsubscribed_at is not None


def _tokens_not_ours(delivery, other_workspace):
    good = unsubscribe.make_token(delivery.workspace_id, delivery.pk)
    value, _, signature = good.partition(".")
    swapped = good[:-1] + ("A" if good[-1] != "A" else "B")
    return {
        "truncated": good[:-6],
        "tampered": swapped,
        "other delivery, same signature": f"{value[:-1]}z.{signature}",
        "no signature": value,
        "other salt": signing.Signer(salt="elsewhere", sep=".").sign(value),
        # signed by us, but for the other workspace: the delivery is not one of its own
        "other workspace": unsubscribe.make_token(other_workspace.pk, delivery.pk),
        "long": "A" * 5000,
        "unicode": "ünsübscribé.☃✓" * 3,
        "bad base64": "!!!.@@@",
        "dots": "...",
        "percent": "%25%3A%C3%A9",
    }


def test_a_token_not_ours_is_404_and_changes_nothing(workspace, other_workspace, client):
    _sandbox(workspace)
    person = PersonFactory(workspace=workspace, email="eve@example.com")
    campaign = _launch(workspace, [person])
    dispatch(campaign.pk)
    delivery = Delivery.objects.get(campaign=campaign)
    for label, token in _tokens_not_ours(delivery, other_workspace).items():
        for method in ("get", "post"):
            answer = getattr(client, method)(f"/u/{token}")
            assert answer.status_code == 404, (label, method, answer.status_code)
        assert b"not valid" in client.get(f"/u/{token}").content, label
    assert client.post(f"/u/{unsubscribe.make_token(workspace.pk, 10**9)}").status_code == 404
    assert client.get("/u/").status_code == 404
    assert not DoNotContact.objects.exists()
    assert not AuditEntry.objects.filter(action="dnc.unsubscribe").exists()
    delivery.refresh_from_db()
    assert delivery.unsubscribed_at is None
    # a body no parser can read, on a valid token: still unsubscribed, never a 500
    good = f"/u/{unsubscribe.make_token(workspace.pk, delivery.pk)}"
    broken = client.post(good, b"--x\r\nnot multipart", content_type="multipart/form-data")
    assert broken.status_code == 200 and DoNotContact.objects.count() == 1


def test_headers_are_absolute_and_offer_mailto_only_when_a_mailbox_is_set(workspace, settings):
    campaign = Campaign(workspace=workspace, name="x", channel="email")
    headers = unsubscribe.email_headers(campaign, 42, "ann@example.com")
    assert headers["List-Unsubscribe-Post"] == ONE_CLICK
    token = _path(headers["List-Unsubscribe"]).removeprefix("/u/")
    assert unsubscribe.read_token(token) == (workspace.pk, 42)
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@acme.test"
    header = unsubscribe.email_headers(campaign, 42, "ann@example.com")["List-Unsubscribe"]
    https, mailto = header.split(", ")
    assert https == f"<{BASE}/u/{token}>"
    assert mailto.startswith("<mailto:unsubscribe@acme.test?subject=") and mailto.endswith(">")
    assert unquote(mailto.split("subject=")[1][:-1]) == f"unsubscribe {token}"
    # no PUBLIC_BASE_URL: production links are still https, on the installation's host
    settings.PUBLIC_BASE_URL = ""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*.acme.test", ".herald.acme.test", "localhost"]
    assert unsubscribe.public_base_url() == "https://herald.acme.test"
    settings.ALLOWED_HOSTS = ["*"]
    assert unsubscribe.public_base_url() == "https://localhost"
    # the demo (make run, DEBUG): the address it serves on
    settings.DEBUG = True
    assert unsubscribe.public_base_url() == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("line", "body", "sent"),
    [("Reply STOP to opt out", "Sale on", "Sale on\nReply STOP to opt out"),
     ("Reply STOP to opt out", "Sale on  \n", "Sale on\nReply STOP to opt out"),
     ("Reply STOP to opt out", "Sale on. reply stop to opt out", "Sale on. reply stop to opt out"),
     ("Reply STOP to opt out", "", "Reply STOP to opt out"),
     ("", "Sale on", "Sale on")],
)  # fmt: skip
def test_the_sms_opt_out_line_ends_the_body_once(workspace, line, body, sent):
    workspace.sms_opt_out_line = line
    assert unsubscribe.sms_body(Campaign(workspace=workspace, channel="sms"), body) == sent


def test_the_opt_out_line_is_a_workspace_setting_of_one_short_line(workspace, owner_client):
    page = owner_client.get("/settings/")
    assert b"SMS opt-out line" in page.content and b"Reply STOP to opt out" in page.content
    data = {"name": "Acme", "time_zone": "UTC"}
    form = WorkspaceForm({**data, "sms_opt_out_line": "x" * 71}, instance=workspace)
    assert "sms_opt_out_line" in form.errors
    form = WorkspaceForm({**data, "sms_opt_out_line": " Reply STOP\nto opt out "},
                         instance=workspace)  # fmt: skip
    assert form.is_valid() and form.cleaned_data["sms_opt_out_line"] == "Reply STOP to opt out"
    answer = owner_client.post("/settings/", {**data, "sms_opt_out_line": "Reply STOP to opt out"})
    assert answer.status_code == 302
    assert Workspace.objects.get(pk=workspace.pk).sms_opt_out_line == "Reply STOP to opt out"
    entry = AuditEntry.objects.for_workspace(workspace).filter(action="workspace.update").last()
    assert "sms_opt_out_line" in entry.summary["fields"]


@pytest.fixture
def twilio_fake(twilio_server):  # noqa: F811 - the fixture imported above
    twilio_server.clear()
    fake = FakeTwilio()
    twilio_server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    fake.url = twilio_server.url_for("/")
    return fake


def test_sms_ends_with_the_opt_out_line_and_a_stop_reply_skips_the_next_campaign(
    workspace, client, twilio_fake
):
    Workspace.objects.filter(pk=workspace.pk).update(sms_opt_out_line="Reply STOP to opt out")
    twilio = provider_set(
        workspace=workspace, channel="sms", kind="twilio",
        settings={"account_sid": SID, "from": "+14155550100", "base_url": twilio_fake.url},
        secrets={"auth_token": TOKEN}, actor=ACTOR,
    )  # fmt: skip
    ann = PersonFactory(workspace=workspace, phone="+14155550101")
    bob = PersonFactory(workspace=workspace, phone="+14155550102")
    campaign = _launch(workspace, [ann, bob], channel="sms", content={"body": "Sale on"})
    dispatch(campaign.pk)
    assert sorted(form["Body"] for form, _ in twilio_fake.requests) == [
        "Sale on\nReply STOP to opt out"] * 2  # fmt: skip
    # Ann replies STOP (Twilio's signed incoming-message webhook)
    path = f"/hooks/twilio/inbound/{twilio.hook_id}/"
    params = {"MessageSid": "SMreply1", "From": "+14155550101", "To": "+14155550100",
              "Body": "STOP", "AccountSid": SID}  # fmt: skip
    signature = RequestValidator(TOKEN).compute_signature(f"http://testserver{path}", params)
    assert client.post(path, params, headers={"X-Twilio-Signature": signature}).status_code == 200
    twilio_fake.requests.clear()
    second = _launch(workspace, [ann, bob], channel="sms", content={"body": "Last day"},
                     name="Summer")  # fmt: skip
    skipped = dict(Delivery.objects.filter(campaign=second).values_list("person_id", "reason"))
    assert skipped == {ann.pk: "dnc", bob.pk: ""}
    dispatch(second.pk)
    assert [form["To"] for form, _ in twilio_fake.requests] == ["+14155550102"]
