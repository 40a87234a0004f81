"""The campaign pages: the list with its filters and a new draft, the editor of each
channel (Liquid errors at their field and line, a sending campaign refused), the
targeting (an audience's lists copied in and changed, Everyone), the live estimate, the
preview for a person, the test send (Sandbox; no provider is a message, not a 500),
launch and the lifecycle through the pages, the progress, the per-recipient log and its
formula-safe CSV; another workspace's campaign is not found."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import AuditEntry, Role
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_create, campaign_launch, campaign_launch_run
from channels.list_services import channel_audience_create, channel_segment_add
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
EMAIL = {"subject": "Hi {{ person.first_name | default: 'there' }}", "text": "Sale on",
         "html": "<p>Sale on, {{ person.first_name }}</p>"}  # fmt: skip
HTMX = {"HTTP_HX_REQUEST": "true"}


def static(workspace, name, people, **extra):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, people=Person.objects.filter(
        pk__in=[p.pk for p in people]), add=True, actor=ACTOR)  # fmt: skip
    if extra:
        type(segment).objects.filter(pk=segment.pk).update(**extra)
        segment.refresh_from_db()
    return segment


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def people(workspace):
    return [
        PersonFactory(workspace=workspace, external_id="ann", first_name="Ann",
                      email="ann@example.com", phone="+447700900001"),
        PersonFactory(workspace=workspace, external_id="bob", first_name="Bob",
                      email="bob@example.com"),
        PersonFactory(workspace=workspace, external_id="cy", first_name="Cy", email=""),
        PersonFactory(workspace=workspace, external_id="dee", first_name="",
                      email="dee@example.com"),
    ]  # fmt: skip


@pytest.fixture
def client_(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def sandbox(workspace):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=ACTOR)  # fmt: skip


def draft(workspace, channel="email", content=None, **kwargs):
    return campaign_create(workspace=workspace, name=kwargs.pop("name", "Spring sale"),
                           channel=channel, content=EMAIL if content is None else content,
                           actor=ACTOR, **kwargs)  # fmt: skip


# --- the list ------------------------------------------------------------------------


def test_the_list_filters_counts_and_pages_without_more_queries_per_row(
    client_, workspace, people, sandbox
):
    for i in range(3):
        draft(workspace, name=f"Email {i}")
    draft(workspace, channel="sms", content={"body": "Hi"}, name="Text them")
    page = text(client_.get("/campaigns/"))
    assert "Text them" in page and "Email 2" in page
    assert page.index("Text them") < page.index("Email 0")  # newest first
    assert "Draft (4)" in page and "All statuses (4)" in page
    only_sms = text(client_.get("/campaigns/?channel=sms"))
    assert "Text them" in only_sms and "Email 0" not in only_sms
    assert "No campaign matches" in text(client_.get("/campaigns/?status=sent"))
    # an unknown filter value is ignored, not an error
    assert client_.get("/campaigns/?status=nope&channel=fax").status_code == 200

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client_.get("/campaigns/").status_code == 200
        return len(captured)

    everyone = static(workspace, "All", people)
    launched = draft(workspace, name="Launched", include=[everyone])
    campaign_launch(campaign=launched, actor=ACTOR)
    campaign_launch_run(launch_id=launched.launches.get().pk)
    before = queries()
    for i in range(10):
        more = draft(workspace, name=f"More {i}", include=[everyone])
        campaign_launch(campaign=more, actor=ACTOR)
        campaign_launch_run(launch_id=more.launches.get().pk)
    assert queries() == before  # one grouped query counts the recipients of every row
    row = text(client_.get("/campaigns/?status=sending"))
    assert row.count('data-status="sending"') == 11
    assert re.search(r'data-campaign="Launched".*?<td class="text-end">3</td>', row, re.DOTALL)


def test_the_list_pages_by_keyset(client_, workspace, monkeypatch):
    from campaigns import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for i in range(5):
        draft(workspace, name=f"C{i}")
    first = text(client_.get("/campaigns/"))
    assert "C4" in first and "C3" in first and "C2" not in first
    after = re.search(r"after=(\d+)", first)[1]
    second = text(client_.get(f"/campaigns/?after={after}"))
    assert "C2" in second and "C1" in second and "C4" not in second
    assert 'rel="prev"' in second


def test_a_new_campaign_is_created_and_opens_its_editor(client_, workspace):
    response = client_.post("/campaigns/", {"name": "  Spring   news ", "channel": "sms"})
    campaign = Campaign.objects.for_workspace(workspace).get()
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/edit/"
    assert (campaign.name, campaign.channel, campaign.status) == ("Spring news", "sms", "draft")
    assert AuditEntry.objects.for_workspace(workspace).filter(action="campaign.create").exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "channel": "email"}, "This field is required."),
        ({"name": "X", "channel": "meta"}, "Select a valid choice."),
        ({"name": "   ", "channel": "email"}, "This field is required."),
        ({"name": "x" * 201, "channel": "email"}, "at most 200 characters"),
    ],
)
def test_a_new_campaign_with_bad_input_is_a_form_error(client_, workspace, data, error):
    response = client_.post("/campaigns/", data)
    assert response.status_code == 200 and error in text(response)
    assert not Campaign.objects.for_workspace(workspace).exists()


def test_a_draft_is_deleted_a_launched_campaign_is_not(client_, workspace, people, sandbox):
    campaign = draft(workspace)
    response = client_.post(f"/campaigns/{campaign.pk}/delete/", follow=True)
    assert "Campaign “Spring sale” deleted." in text(response)
    assert not Campaign.objects.for_workspace(workspace).exists()
    sent = draft(workspace, include=[static(workspace, "All", people)])
    campaign_launch(campaign=sent, actor=ACTOR)
    response = client_.post(f"/campaigns/{sent.pk}/delete/", follow=True)
    assert "Only a draft is deleted" in text(response)
    assert Campaign.objects.for_workspace(workspace).filter(pk=sent.pk).exists()


# --- the editor ----------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
def test_every_page_of_a_campaign_renders(client_, workspace, people, channel):
    campaign = draft(workspace, channel=channel, content={})
    base = f"/campaigns/{campaign.pk}"
    for url in ("/campaigns/", f"{base}/", f"{base}/edit/", f"{base}/preview/",
                f"{base}/estimate/", f"{base}/log/", f"{base}/log.csv", f"{base}/progress/",
                f"{base}/preview/html/"):  # fmt: skip
        response = client_.get(url)
        assert response.status_code == 200, (url, response.status_code)
    editor = text(client_.get(f"{base}/edit/"))
    assert {"email": "Reply-to address", "sms": 'data-sms-count="#sms-count"',
            "push": "Interruption level"}[channel] in editor  # fmt: skip


def test_the_message_is_saved_and_the_preview_told_to_reload(client_, workspace, people):
    campaign = draft(workspace, content={})
    data = {"name": "Spring", "subject": "Hello {{ person.first_name }}", "preheader": "",
            "from_name": "Shop", "reply_to": "help@shop.test", "text": "Hi",
            "html": "<style>p { color: red }</style><p>Hi <script>x()</script></p>"}  # fmt: skip
    response = client_.post(f"/campaigns/{campaign.pk}/content/", data, **HTMX)
    assert response.status_code == 200 and response["HX-Trigger"] == "campaign-saved"
    assert "Saved at" in text(response)
    campaign.refresh_from_db()
    assert campaign.name == "Spring"
    assert campaign.content["subject"] == "Hello {{ person.first_name }}"
    assert campaign.content["html"] == '<p style="color: red;">Hi </p>'  # inlined, sanitized
    entry = AuditEntry.objects.for_workspace(workspace).filter(action="campaign.update").last()
    assert entry is not None
    # without htmx: back to the editor with a message
    response = client_.post(f"/campaigns/{campaign.pk}/content/", data)
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/edit/"


def test_bad_liquid_is_shown_at_its_field_and_line_and_nothing_is_saved(client_, workspace):
    campaign = draft(workspace)
    data = {"name": "Spring", "subject": "Hi", "text": "Line one\nHi {{ person.first_name",
            "html": "<p>{{ person.first_name | shout }}</p>"}  # fmt: skip
    response = client_.post(f"/campaigns/{campaign.pk}/content/", data, **HTMX)
    page = text(response)
    assert response.status_code == 200 and "HX-Trigger" not in response
    assert re.search(r'data-error="text">Line 2: expected', page)
    assert 'data-line="2"' in page and "Hi {{ person.first_name</span>" in page
    assert "Line 1: unknown filter &#x27;shout&#x27;" in page
    assert "Not saved" in page
    campaign.refresh_from_db()
    assert campaign.content["text"] == "Sale on"
    # the full page (no htmx) shows the same at the field
    page = text(client_.post(f"/campaigns/{campaign.pk}/content/", data))
    assert 'data-error="text"' in page and "1. Message" in page


def test_push_content_is_saved_with_buttons_and_options_and_refused_at_the_field(
    client_, workspace
):
    campaign = draft(workspace, channel="push", content={})
    data = {"name": "Push", "title": "Hi {{ person.first_name }}", "body": "Sale",
            "image_url": "https://cdn.example.com/a.png", "url": "myapp://sale",
            "buttons__0__title": "Open", "buttons__0__url": "myapp://open",
            "buttons__0__id": "", "buttons__1__title": "", "buttons__1__url": "",
            "buttons__1__id": "", "buttons__2__title": "Later", "buttons__2__url": "",
            "buttons__2__id": "later", "ios__sound": "default", "ios__badge": "3",
            "ios__interruption_level": "time-sensitive", "android__priority": "high",
            "android__ttl_seconds": "3600", "android__color": "#4F46E5"}  # fmt: skip
    response = client_.post(f"/campaigns/{campaign.pk}/content/", data, **HTMX)
    assert response["HX-Trigger"] == "campaign-saved", text(response)
    campaign.refresh_from_db()
    content = campaign.content
    assert content["buttons"] == [
        {"id": "button-1", "title": "Open", "url": "myapp://open"},
        {"id": "later", "title": "Later", "url": ""},
    ]
    assert content["ios"] == {"sound": "default", "badge": 3,
                              "interruption_level": "time-sensitive"}  # fmt: skip
    assert content["android"] == {"priority": "high", "ttl_seconds": 3600, "color": "#4F46E5"}
    # the third row (the second button) is refused at its own fields; a colour and a badge
    bad = data | {"buttons__2__id": "bad id!", "android__color": "red", "ios__badge": "many",
                  "image_url": "javascript:alert(1)"}  # fmt: skip
    page = text(client_.post(f"/campaigns/{campaign.pk}/content/", bad, **HTMX))
    assert 'data-error="ios__badge">Enter a whole number.' in page
    bad["ios__badge"] = "3"
    page = text(client_.post(f"/campaigns/{campaign.pk}/content/", bad, **HTMX))
    assert 'data-error="buttons__2__id">Must be 1 to 64 letters' in page
    assert 'data-error="android__color">Must be a colour as #RRGGBB' in page
    assert 'data-error="image_url">' in page
    campaign.refresh_from_db()
    assert campaign.content == content


def test_a_sending_campaign_is_not_edited(client_, workspace, people, sandbox):
    campaign = draft(workspace, include=[static(workspace, "All", people)])
    campaign_launch(campaign=campaign, actor=ACTOR)
    editor = text(client_.get(f"/campaigns/{campaign.pk}/edit/"))
    assert "only a draft or a scheduled campaign changes" in editor
    assert "<fieldset disabled>" in editor
    data = {"name": "Renamed", "subject": "New", "text": "x", "html": ""}
    page = text(client_.post(f"/campaigns/{campaign.pk}/content/", data, **HTMX))
    assert "The campaign is sending: only a draft or a scheduled campaign changes." in page
    all_people = static(workspace, "More", people[:1])
    page = text(client_.post(f"/campaigns/{campaign.pk}/targeting/",
                             {"target": "lists", "include": [all_people.pk]}, **HTMX))  # fmt: skip
    assert "The campaign is sending" in page
    campaign.refresh_from_db()
    assert campaign.name == "Spring sale" and campaign.content["subject"] == EMAIL["subject"]


# --- targeting and the estimate ------------------------------------------------------


def _audience(workspace, include, exclude, channel="email", name="Newsletter"):
    entries = {s.pk: channel_segment_add(workspace=workspace, channel=channel, segment=s,
                                         actor=ACTOR) for s in (*include, *exclude)}  # fmt: skip
    return channel_audience_create(workspace=workspace, channel=channel, data={
        "name": name, "include": [entries[s.pk].pk for s in include],
        "exclude": [entries[s.pk].pk for s in exclude]}, actor=ACTOR)  # fmt: skip


def test_an_audience_fills_in_its_lists_and_the_campaign_changes_them(client_, workspace, people):
    customers = static(workspace, "Customers", people)
    churned = static(workspace, "Churned", people[1:2])
    vip = static(workspace, "VIP", people[:1])
    audience = _audience(workspace, [customers], [churned])
    campaign = draft(workspace)
    url = f"/campaigns/{campaign.pk}/targeting/"
    page = text(client_.post(url, {"target": "lists", "audience": audience.pk,
                                   "pick": "audience"}, **HTMX))  # fmt: skip
    campaign.refresh_from_db()
    assert campaign.audience == audience
    assert list(campaign.include.all()) == [customers] and list(campaign.exclude.all()) == [churned]
    # the audience's segments come first in the pickers, ticked
    include_picker = page[page.index('id="picker-include"') : page.index('id="picker-exclude"')]
    assert include_picker.index("Customers") < include_picker.index("Churned")
    assert f'value="{customers.pk}" id="id_include_{customers.pk}" checked' in include_picker
    # add VIP, drop Churned from the excludes: the summary says what differs
    page = text(client_.post(url, {"target": "lists", "audience": audience.pk,
                                   "include": [customers.pk, vip.pk]}, **HTMX))  # fmt: skip
    assert 'id="targeting-summary"' in page and 'id="picker-include"' not in page
    assert "chip-added" in page and "chip-removed" in page and "Changed from the audience" in page
    campaign.refresh_from_db()
    assert set(campaign.include.all()) == {customers, vip} and not campaign.exclude.exists()
    audience.refresh_from_db()
    assert [e.segment for e in audience.exclude.all()] == [churned]  # the audience unchanged
    detail = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert "Newsletter" in detail and "VIP" in detail and "chip-removed" in detail
    # Everyone is an explicit choice
    client_.post(url, {"target": "everyone", "audience": audience.pk,
                       "include": [customers.pk, vip.pk]}, **HTMX)  # fmt: skip
    campaign.refresh_from_db()
    assert campaign.everyone


def test_an_audience_of_another_channel_or_workspace_is_refused(
    client_, workspace, other_workspace, people
):
    customers = static(workspace, "Customers", people)
    sms_audience = _audience(workspace, [customers], [], channel="sms", name="Texts")
    foreign = static(other_workspace, "Theirs", [])
    campaign = draft(workspace)
    url = f"/campaigns/{campaign.pk}/targeting/"
    page = text(client_.post(url, {"target": "lists", "audience": sms_audience.pk,
                                   "pick": "audience"}, **HTMX))  # fmt: skip
    assert "Choose one of the Email audiences listed." in page
    page = text(client_.post(url, {"target": "lists", "include": [foreign.pk]}, **HTMX))
    assert f"{foreign.pk} is not a segment of this workspace." in page
    page = text(client_.post(url, {"target": "nobody", "include": ["x"]}, **HTMX))
    assert "Select a valid choice" in page
    campaign.refresh_from_db()
    assert campaign.audience is None and not campaign.include.exists()
    # without htmx: back to the editor with the message
    response = client_.post(url, {"target": "lists", "include": [foreign.pk]}, follow=True)
    assert "is not a segment of this workspace" in text(response)


def test_the_estimate_counts_recipients_and_each_skip_reason(client_, workspace, people):
    PersonFactory(workspace=workspace, external_id="dup", email="ann@example.com")
    dnc_add(workspace=workspace, channel="email", address="bob@example.com", actor=ACTOR)
    campaign = draft(workspace)
    url = f"/campaigns/{campaign.pk}/estimate/"
    assert "No recipients chosen yet" in text(client_.get(url))
    client_.post(f"/campaigns/{campaign.pk}/targeting/", {"target": "everyone"}, **HTMX)
    page = text(client_.get(url))
    assert 'data-estimate="recipients">2<' in page  # ann, dee
    assert 'data-skip="dnc">1<' in page and 'data-skip="no_address">1<' in page
    assert 'data-skip="duplicate_address">1<' in page
    assert "On Do Not Contact" in page and "No address on the channel" in page


# --- the preview ---------------------------------------------------------------------


def test_the_preview_renders_the_saved_message_for_a_chosen_person(client_, workspace, people):
    campaign = draft(workspace, include=[static(workspace, "All", people)])
    base = f"/campaigns/{campaign.pk}/preview/"
    page = text(client_.get(base))  # the first recipient by default
    assert 'data-preview="subject">Hi Ann<' in page
    assert f"preview/html/?person_id={people[0].pk}" in page and 'sandbox=""' in page
    page = text(client_.get(base, {"person": "dee"}))
    assert 'data-preview="subject">Hi there<' in page
    page = text(client_.get(base, {"person": "bob@example.com"}))
    assert 'data-preview="subject">Hi Bob<' in page
    page = text(client_.get(base, {"person": "nobody-like-this"}))
    assert "Nobody matches “nobody-like-this”." in page
    html = client_.get(f"{base}html/", {"person_id": people[1].pk})
    assert text(html) == "<p>Sale on, Bob</p>"
    policy = html["Content-Security-Policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy
    assert html["X-Frame-Options"] == "SAMEORIGIN"


def test_the_sms_preview_counts_segments_for_the_person(client_, workspace, people):
    body = "Hi {{ person.first_name }}! " + "x" * 160
    campaign = draft(workspace, channel="sms", content={"body": body}, everyone=True)
    page = text(client_.get(f"/campaigns/{campaign.pk}/preview/", {"person": "ann"}))
    assert "Hi Ann! " in page and "GSM-7: <strong>2 segments</strong> (153 per segment)" in page
    campaign.content = {"body": "Hi {{ person.first_name }} 🎉"}
    campaign.save()
    page = text(client_.get(f"/campaigns/{campaign.pk}/preview/", {"person": "ann"}))
    assert "UCS-2: <strong>1 segment</strong>" in page


def test_the_push_preview_shows_title_body_and_buttons(client_, workspace, people):
    content = {"title": "Hi {{ person.first_name }}", "body": "Sale",
               "buttons": [{"id": "a", "title": "Open", "url": ""}]}  # fmt: skip
    campaign = draft(workspace, channel="push", content=content, everyone=True)
    page = text(client_.get(f"/campaigns/{campaign.pk}/preview/", {"person": "ann"}))
    assert 'data-preview="title">Hi Ann<' in page and 'data-preview="button">Open<' in page


# --- test send -----------------------------------------------------------------------


def test_a_test_send_goes_to_an_internal_segment_with_skips_shown(client_, workspace, people,
                                                                  sandbox):  # fmt: skip
    staff = static(workspace, "Staff", people[:3], internal=True)
    static(workspace, "A customers list", people)
    dnc_add(workspace=workspace, channel="email", address="bob@example.com", actor=ACTOR)
    campaign = draft(workspace)
    editor = text(client_.get(f"/campaigns/{campaign.pk}/edit/"))
    options = re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>',
                         editor[editor.index('name="segment"'):])  # fmt: skip
    assert options[0].startswith("Staff (internal)")  # internal segments first
    response = client_.post(f"/campaigns/{campaign.pk}/test/", {"segment": staff.pk}, **HTMX)
    page = text(response)
    assert 'data-test="sent">1 sent' in page and 'data-test="skipped">2 skipped' in page
    assert "bob</span>: skipped, on do not contact" in page
    assert "cy</span>: skipped, no address on the channel" in page
    assert "See them in the Sandbox inbox" in page
    assert SandboxMessage.objects.for_workspace(workspace).get().subject == "Hi Ann"
    assert not Delivery.objects.filter(campaign=campaign, is_test=False).exists()
    # by external id; an unknown one is a form error
    page = text(client_.post(f"/campaigns/{campaign.pk}/test/", {"people": "dee, ghost"}, **HTMX))
    assert "No person with the ID “ghost”." in page
    page = text(client_.post(f"/campaigns/{campaign.pk}/test/", {"people": "dee"}, **HTMX))
    assert 'data-test="sent">1 sent' in page
    page = text(client_.post(f"/campaigns/{campaign.pk}/test/", {}, **HTMX))
    assert "Choose a test segment or type people&#x27;s IDs" in page


def test_a_test_send_without_a_provider_or_with_incomplete_content_says_why(
    client_, workspace, people
):
    staff = static(workspace, "Staff", people[:1], internal=True)
    campaign = draft(workspace)
    response = client_.post(f"/campaigns/{campaign.pk}/test/", {"segment": staff.pk}, **HTMX)
    assert response.status_code == 200
    errors = text(response)[text(response).index('id="test-errors"') :]
    assert "No email provider is set up for this workspace" in errors
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=ACTOR)  # fmt: skip
    empty = draft(workspace, content={}, name="Empty")
    page = text(client_.post(f"/campaigns/{empty.pk}/test/", {"segment": staff.pk}, **HTMX))
    assert "The message is not ready to send: subject: an email needs a subject" in page


# --- launch, schedule, lifecycle -----------------------------------------------------


def test_launch_through_the_page_reaches_sent_and_the_log_lists_everyone(
    client_, workspace, people, sandbox, run_jobs
):
    campaign = draft(workspace, include=[static(workspace, "All", people)])
    with run_jobs():
        response = client_.post(f"/campaigns/{campaign.pk}/launch/", {"when": "now"})
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    campaign.refresh_from_db()
    assert campaign.status == "sent"  # the jobs ran: the freeze, then the senders
    response = client_.get(f"/campaigns/{campaign.pk}/progress/?shown=sending", **HTMX)
    assert response["HX-Refresh"] == "true" and "every 2s" not in text(response)
    detail = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert 'data-stat="recipients">3<' in detail and 'data-stat="sent">3<' in detail
    assert 'data-skipped="no_address">1<' in detail and 'id="sends-chart"' in detail
    assert 'id="sends-data"' in detail
    log = text(client_.get(f"/campaigns/{campaign.pk}/log/"))
    assert all(f'data-person="{p.external_id}"' in log for p in people)
    skipped = text(client_.get(f"/campaigns/{campaign.pk}/log/?status=skipped"))
    assert 'data-person="cy"' in skipped and 'data-person="ann"' not in skipped
    found = text(client_.get(f"/campaigns/{campaign.pk}/log/?q=dee@"))
    assert 'data-person="dee"' in found and 'data-person="ann"' not in found
    assert text(client_.get(f"/campaigns/{campaign.pk}/log/?reason=dnc")).count("data-person=") == 0


def test_launch_refusals_are_shown_on_the_form(client_, workspace, people, sandbox):
    campaign = draft(workspace)
    url = f"/campaigns/{campaign.pk}/launch/"
    page = text(client_.post(url, {"when": "now"}))
    assert "Not launched: No recipients chosen" in page
    past = (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = text(client_.post(url, {"when": "later", "send_at": past}))
    assert "Choose a time in the future, or send it now." in page
    page = text(client_.post(url, {"when": "later", "send_at": "tomorrow-ish"}))
    assert "Enter a valid date/time." in page
    soon = (timezone.localtime() + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    sooner = (timezone.localtime() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page = text(client_.post(url, {"when": "later", "send_at": soon, "expires_at": sooner}))
    assert "The expiry must come after the send time." in page
    empty = draft(workspace, content={}, name="Empty", everyone=True)
    page = text(client_.post(f"/campaigns/{empty.pk}/launch/", {"when": "now"}))
    assert "Not launched: subject: an email needs a subject" in page
    campaign.refresh_from_db()
    assert campaign.status == "draft" and empty.status == "draft"


def test_schedule_in_the_workspace_time_zone_then_cancel(client_, workspace, people, sandbox):
    workspace.time_zone = "Asia/Tokyo"
    workspace.save()
    campaign = draft(workspace, everyone=True)
    editor = text(client_.get(f"/campaigns/{campaign.pk}/edit/"))
    assert 'id="time-zone">Asia/Tokyo<' in editor
    when = timezone.now().astimezone(workspace.tzinfo) + timedelta(days=1)
    response = client_.post(f"/campaigns/{campaign.pk}/launch/", {
        "when": "later", "send_at": when.strftime("%Y-%m-%dT%H:%M")}, follow=True)  # fmt: skip
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    assert campaign.send_at == when.replace(second=0, microsecond=0)
    assert f"Scheduled for {when:%d %b %Y, %H:%M} (Asia/Tokyo)" in text(response)
    response = client_.post(f"/campaigns/{campaign.pk}/cancel/", follow=True)
    assert "Cancelled: nothing more is sent" in text(response)
    campaign.refresh_from_db()
    assert campaign.status == "cancelled"
    assert AuditEntry.objects.for_workspace(workspace).filter(action="campaign.cancelled").exists()


def test_pause_and_resume_through_the_page(client_, workspace, people, sandbox):
    campaign = draft(workspace, include=[static(workspace, "All", people)])
    campaign_launch(campaign=campaign, actor=ACTOR)
    campaign_launch_run(launch_id=campaign.launches.get().pk)
    detail = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert "Pause" in detail and "Resume" not in detail
    assert 'hx-trigger="every 2s"' in detail  # the progress is polled while it sends
    progress = client_.get(f"/campaigns/{campaign.pk}/progress/?shown=sending", **HTMX)
    assert "HX-Refresh" not in progress and 'data-progress="queued">3 waiting' in text(progress)
    response = client_.post(f"/campaigns/{campaign.pk}/pause/", follow=True)
    assert "Paused: nothing more goes out" in text(response)
    assert "Resume" in text(response)
    response = client_.post(f"/campaigns/{campaign.pk}/pause/", follow=True)
    assert "Only a sending campaign can be paused." in text(response)
    response = client_.post(f"/campaigns/{campaign.pk}/resume/", follow=True)
    assert "Resumed" in text(response)
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    dispatch(campaign.pk)
    detail = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert 'data-status="sent"' in detail and 'hx-trigger="every 2s"' not in detail


# --- the CSV of the log ----------------------------------------------------------------


def test_the_log_csv_is_formula_safe(client_, workspace, sandbox):
    sly = [PersonFactory(workspace=workspace, external_id=name, email=f"p{i}@example.com")
           for i, name in enumerate(["=HYPERLINK(\"http://x\")", "+cmd", "-2+3", "@SUM(A1)",
                                     "\tTAB", "plain"])]  # fmt: skip
    campaign = draft(workspace, include=[static(workspace, "Sly", sly)])
    campaign_launch(campaign=campaign, actor=ACTOR)
    campaign_launch_run(launch_id=campaign.launches.get().pk)
    Delivery.objects.filter(campaign=campaign, person=sly[-1]).update(
        status="failed", error="=cmd|' /C calc'!A0"
    )
    response = client_.get(f"/campaigns/{campaign.pk}/log.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["person", "address", "status"]
    people = [row[0] for row in rows[1:]]
    assert people == ["'=HYPERLINK(\"http://x\")", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tTAB",
                      "plain"]  # fmt: skip
    assert rows[-1][4] == "'=cmd\\|' /C calc'!A0"
    # the page's filters apply to the CSV too
    only = client_.get(f"/campaigns/{campaign.pk}/log.csv?status=failed")
    assert b"".join(only.streaming_content).decode("utf-8-sig").count("\n") == 2


# --- roles and workspaces --------------------------------------------------------------


def test_a_viewer_reads_the_campaign_but_cannot_edit_it(member_client, workspace, people):
    campaign = draft(workspace)
    viewer = member_client(Role.VIEWER)
    detail = text(viewer.get(f"/campaigns/{campaign.pk}/"))
    assert "Spring sale" in detail and 'id="lifecycle"' not in detail
    assert viewer.get(f"/campaigns/{campaign.pk}/edit/").status_code == 403
    assert viewer.post(f"/campaigns/{campaign.pk}/content/", {"name": "x"}).status_code == 403
    assert viewer.post("/campaigns/", {"name": "x", "channel": "email"}).status_code == 403
    assert "New campaign" not in text(viewer.get("/campaigns/"))


def test_another_workspaces_campaign_is_not_found(client_, other_workspace):
    theirs = draft(other_workspace, everyone=True)
    base = f"/campaigns/{theirs.pk}"
    for url in (
        f"{base}/",
        f"{base}/edit/",
        f"{base}/preview/",
        f"{base}/preview/html/",
        f"{base}/estimate/",
        f"{base}/log/",
        f"{base}/log.csv",
        f"{base}/progress/",
    ):
        assert client_.get(url).status_code == 404, url
    for url in (
        f"{base}/content/",
        f"{base}/targeting/",
        f"{base}/test/",
        f"{base}/launch/",
        f"{base}/pause/",
        f"{base}/resume/",
        f"{base}/cancel/",
        f"{base}/delete/",
        f"{base}/variants/",
        f"{base}/winner/",
    ):
        assert client_.post(url, {"name": "x", "when": "now"}).status_code == 404, url
    theirs.refresh_from_db()
    assert theirs.status == "draft" and theirs.name == "Spring sale"
    assert "Spring sale" not in text(client_.get("/campaigns/"))


# --- A/B variants --------------------------------------------------------------------------


def _ab_post(client, campaign, action, **fields):
    return client.post(f"/campaigns/{campaign.pk}/variants/", {"action": action, **fields},
                       **HTMX)  # fmt: skip


def _ab_fields(campaign, **overrides):
    campaign.refresh_from_db()
    data = {"ab_percent": campaign.ab_test_percent, "ab_metric": campaign.ab_metric,
            "ab_hours": campaign.ab_decide_hours}  # fmt: skip
    for i, variant in enumerate(campaign.variants):
        data[f"v{i}_name"] = variant["name"]
        data[f"v{i}_percent"] = variant["percent"]
        for key, value in (variant.get("content") or {}).items():
            data[f"v{i}_{key}"] = value
    return data | overrides


def test_the_ab_card_starts_edits_adds_removes_and_refuses_at_the_field(
    client_, workspace, people
):
    campaign = draft(workspace)
    started = _ab_post(client_, campaign, "start")
    assert started.status_code == 200 and started["HX-Trigger"] == "campaign-saved"
    campaign.refresh_from_db()
    assert [v["percent"] for v in campaign.variants] == [50, 50]
    assert campaign.variants[1]["content"]["subject"] == EMAIL["subject"]  # a copy to edit
    assert 'data-variant="B"' in text(started)
    saved = _ab_post(client_, campaign, "save", **_ab_fields(
        campaign, v1_subject="Last day, {{ person.first_name }}", v1_name="Urgent",
        v0_percent=60, v1_percent=40, ab_percent=20, ab_metric="click", ab_hours=6))  # fmt: skip
    assert "Saved at" in text(saved)
    campaign.refresh_from_db()
    assert campaign.variants[1] == {"key": "B", "name": "Urgent", "percent": 40, "content": {
        "subject": "Last day, {{ person.first_name }}", "text": "Sale on",
        "html": "<p>Sale on, {{ person.first_name }}</p>"}}  # fmt: skip
    assert (campaign.ab_test_percent, campaign.ab_metric, campaign.ab_decide_hours) == (
        20, "click", 6)  # fmt: skip
    # the preview shows B's subject for a person
    preview = client_.get(f"/campaigns/{campaign.pk}/preview/?person=ann&variant=B")
    assert "Last day, Ann" in text(preview)
    # refusals at the field, nothing saved
    bad_sum = _ab_post(client_, campaign, "save", **_ab_fields(campaign, v1_percent=30))
    assert "add up to 90" in text(bad_sum) and "Not saved" in text(bad_sum)
    bad_liquid = _ab_post(client_, campaign, "save", **_ab_fields(campaign, v1_subject="{% if %}"))
    body = text(bad_liquid)
    assert 'id="id_v1_subject"' in body and "is-invalid" in body
    bad_hours = _ab_post(client_, campaign, "save", **_ab_fields(campaign, ab_hours=0))
    assert "is-invalid" in text(bad_hours)
    campaign.refresh_from_db()
    assert campaign.variants[1]["percent"] == 40 and campaign.ab_decide_hours == 6
    # add: shares split evenly; remove: again; remove down to one: no A/B test
    _ab_post(client_, campaign, "add", **_ab_fields(campaign))
    campaign.refresh_from_db()
    assert [v["percent"] for v in campaign.variants] == [34, 33, 33]
    _ab_post(client_, campaign, "remove-1", **_ab_fields(campaign))
    campaign.refresh_from_db()
    assert [(v["key"], v["percent"]) for v in campaign.variants] == [("A", 50), ("B", 50)]
    assert campaign.variants[1]["content"] == {}  # C (empty) moved up to B
    _ab_post(client_, campaign, "off")
    campaign.refresh_from_db()
    assert campaign.variants == [] and campaign.ab_test_percent == 0


def test_the_campaign_page_shows_the_variants_and_a_winner_chosen_by_hand(
    client_, workspace, people, sandbox, run_jobs
):
    crowd = people + [PersonFactory(workspace=workspace, email=f"p{i}@example.com")
                      for i in range(40)]  # fmt: skip
    campaign = draft(workspace, include=[static(workspace, "All", crowd)])
    from campaigns.services import campaign_update

    campaign_update(campaign=campaign, actor=ACTOR, variants=[
        {"percent": 50, "name": "Plain"}, {"percent": 50, "content": {"subject": "Other"}}],
        ab_test={"percent": 50, "metric": "open", "decide_after_hours": 4})  # fmt: skip
    campaign = campaign_launch(campaign=campaign, actor=ACTOR)
    campaign_launch_run(launch_id=campaign.launches.get().pk)
    dispatch(campaign.pk)
    page = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert 'id="ab-table"' in page and "A · Plain" in page and 'data-variant="rest"' in page
    assert "waiting for the winner" in page and 'id="choose-winner"' in page
    with run_jobs():
        chosen = client_.post(f"/campaigns/{campaign.pk}/winner/", {"variant": "B"})
    assert chosen.status_code == 302
    campaign.refresh_from_db()
    assert campaign.ab_winner == "B" and campaign.status == "sent"
    page = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert "chosen by hand" in page and 'id="choose-winner"' not in page
    assert SandboxMessage.objects.values("address").distinct().count() == \
        SandboxMessage.objects.count()  # nobody twice
