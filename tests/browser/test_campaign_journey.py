"""Journey: a marketer creates an email campaign from the Campaigns page, writes its
message with a Liquid variable (a syntax error is shown at its line, then fixed), sees it
previewed for chosen people at desktop and mobile widths, picks the Email audience (its
segments fill in; one more is excluded) and reads the live estimate, test-sends to the
internal Staff segment, launches it, watches the page follow it from "waiting for a
worker" to "sent" while the worker runs, and reads the per-recipient log. Once on the
Sandbox provider and once over SMTP to a local server (aiosmtpd), at both widths
(screenshots under /tmp/campaign-*.png)."""

import re

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from campaigns.dispatch.send import dispatch
from campaigns.models import Campaign
from campaigns.services import campaign_launch_run
from channels.list_services import channel_audience_create, channel_segment_add
from channels.models import SandboxMessage
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.models import Segment
from segments.services import segment_create, static_members_change
from tests.browser.journey import nav_to
from tests.browser.test_layout import LAYOUT_PROBLEMS
from tests.channels.conftest import smtp_server  # noqa: F401 - fixture
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    PersonFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACTOR = Actor(system="tests")
HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"


def static(ws, name, people, **extra):
    segment = segment_create(workspace=ws, name=name, kind="static", actor=ACTOR)
    static_members_change(segment=segment, add=True, actor=ACTOR,
                          people=Person.objects.filter(pk__in=[p.pk for p in people]))  # fmt: skip
    if extra:
        Segment.objects.filter(pk=segment.pk).update(**extra)
    return segment


def shop():
    """Customers: Ann, Bob, Cy (no email), Dee (on Do Not Contact), Eve (churned); Staff
    (internal): Sam; the Email audience "Newsletter" includes the customers."""
    ws = WorkspaceFactory(name="Shop", slug="shop", time_zone="Europe/London")
    MembershipFactory(workspace=ws, user=UserFactory(email="mk@shop.test"), role=Role.MARKETER)
    ann = PersonFactory(workspace=ws, external_id="ann", first_name="Ann", last_name="Lee",
                        email="ann@example.com")  # fmt: skip
    bob = PersonFactory(workspace=ws, external_id="bob", first_name="Bob", last_name="Ray",
                        email="bob@example.com")  # fmt: skip
    cy = PersonFactory(workspace=ws, external_id="cy", first_name="Cy", email="")
    dee = PersonFactory(workspace=ws, external_id="dee", first_name="", last_name="Dee",
                        email="dee@example.com")  # fmt: skip
    eve = PersonFactory(workspace=ws, external_id="eve", first_name="Eve", email="eve@example.com")
    sam = PersonFactory(workspace=ws, external_id="sam", first_name="Sam", email="sam@shop.test")
    dnc_add(workspace=ws, channel="email", address="dee@example.com", actor=ACTOR)
    customers = static(ws, "Customers", [ann, bob, cy, dee, eve])
    static(ws, "Churned", [eve])
    static(ws, "Staff", [sam], internal=True)
    entry = channel_segment_add(workspace=ws, channel="email", segment=customers, actor=ACTOR)
    channel_audience_create(workspace=ws, channel="email", actor=ACTOR,
                            data={"name": "Newsletter", "include": [entry.pk]})  # fmt: skip
    return ws


def settled(page):
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


def fits(page, label, name):
    page.wait_for_load_state("networkidle")
    settled(page)
    page.screenshot(path=f"/tmp/campaign-{label}-{name}.png", full_page=True)
    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, f"{name} at {label}: {problems}"


def sign_in(page):
    page.goto("/login/")
    page.get_by_label("Email").fill("mk@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


@pytest.mark.parametrize("provider", ["sandbox", "smtp"])
def test_write_test_send_launch_and_watch_an_email_campaign(page, viewport, provider, request):
    ws = shop()
    if provider == "smtp":
        server = request.getfixturevalue("smtp_server")
        provider_set(workspace=ws, channel="email", kind="smtp", secrets={}, actor=ACTOR,
                     settings={"host": "127.0.0.1", "port": server.port, "security": "none",
                               "from_email": "news@shop.test"})  # fmt: skip
    else:
        provider_set(workspace=ws, channel="email", kind="sandbox", settings={}, secrets={},
                     actor=ACTOR)  # fmt: skip
    label = f"{provider}-{viewport}"
    page.on("dialog", lambda dialog: dialog.accept())  # the launch asks "Launch …?"
    sign_in(page)

    # 1. The Campaigns page, then a new email campaign.
    nav_to(page, "Campaigns")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.locator("#campaign-table")).to_contain_text("No campaigns yet.")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("Spring sale")
    page.get_by_label("Email").check()
    fits(page, label, "new")
    page.get_by_role("button", name="Create and write the message").click()
    expect(page.locator("#messages")).to_contain_text("Campaign “Spring sale” created")
    campaign = Campaign.objects.for_workspace(ws).get()

    # 2. The message, with a Liquid variable; a syntax error is shown at its line.
    page.get_by_label("Subject").fill("Spring is here, {{ person.first_name | default: 'friend'")
    page.get_by_label("Text body").fill("Hello {{ person.first_name | default: 'friend' }},\n"
                                        "everything is 20% off this week.")  # fmt: skip
    page.get_by_label("HTML body").fill(
        "<style>h1 { color: #4f46e5 }</style>\n<h1>Hello {{ person.first_name | default: "
        "'friend' }}</h1>\n<p>Everything is <strong>20% off</strong> this week.</p>"
    )
    page.get_by_role("button", name="Save message").click()
    expect(page.locator('[data-error="subject"]')).to_contain_text("Line 1: expected '}}'")
    expect(page.locator("#save-state")).to_contain_text("Not saved")
    fits(page, label, "liquid-error")
    page.get_by_label("Subject").fill("Spring is here, {{ person.first_name | default: 'friend' }}")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator("#save-state")).to_contain_text("Saved at")

    # 3. The preview follows the save, for a chosen person; desktop and mobile widths.
    preview = page.locator("#preview")
    expect(preview.locator('[data-preview="subject"]')).to_have_text("Spring is here, Sam")
    settled(page)
    page.locator("#preview-person").fill("bob")
    page.locator("#preview-person").press("Enter")
    expect(preview.locator('[data-preview="subject"]')).to_have_text("Spring is here, Bob")
    frame = page.frame_locator("#preview-frame")
    expect(frame.locator("h1")).to_have_text("Hello Bob")
    page.locator("#preview-person").fill("dee")
    page.locator("#preview-person").press("Enter")
    expect(preview.locator('[data-preview="subject"]')).to_have_text("Spring is here, friend")
    preview.get_by_role("button", name="Mobile 375 px").click()
    expect(page.locator("#preview-frame")).to_have_class(re.compile(r"\bpreview-mobile\b"))
    fits(page, label, "message")

    # 4. The audience: Newsletter's segment fills in; Churned is excluded; the estimate.
    expect(page.locator('#estimate [data-estimate="none"]')).to_contain_text("No recipients chosen")
    page.get_by_label("Email audience").select_option(label="Newsletter")
    include = page.locator("#picker-include")
    expect(include.get_by_label("Customers")).to_be_checked()
    expect(include.locator(".picker-row").first).to_contain_text("Customers")  # chosen first
    expect(page.locator('#estimate [data-estimate="recipients"]')).to_have_text("3")  # ann bob eve
    page.locator("#picker-exclude").get_by_label("Filter: exclude people in any of").fill("chu")
    expect(page.locator("#picker-exclude").get_by_label("Staff")).to_be_hidden()
    page.locator("#picker-exclude").get_by_label("Churned").check()
    expect(page.locator('#estimate [data-estimate="recipients"]')).to_have_text("2")
    expect(page.locator('#estimate [data-skip="dnc"]')).to_have_text("1")
    expect(page.locator('#estimate [data-skip="no_address"]')).to_have_text("1")
    expect(page.locator("#definition-differs")).to_contain_text("Changed from the audience")
    fits(page, label, "audience")

    # 5. A test send to the internal Staff segment (listed first).
    test = page.locator("#test")
    expect(test.get_by_label("Test segment").locator("option").nth(1)).to_contain_text(
        "Staff (internal)"
    )
    test.get_by_label("Test segment").select_option(label="Staff (internal) · 1")
    test.get_by_role("button", name="Send test").click()
    expect(page.locator("#test-result")).to_contain_text(
        "Test sent to Staff: 1 sent, 0 skipped, 0 failed."
    )
    fits(page, label, "test-sent")
    if provider == "smtp":
        assert [to for to, _ in server.received] == [["sam@shop.test"]]
    else:
        assert list(SandboxMessage.objects.for_workspace(ws).values_list("address", "subject")) == [
            ("sam@shop.test", "Spring is here, Sam")]  # fmt: skip

    # 6. Launch now: the page waits for a worker, then follows it to "sent".
    page.get_by_role("button", name="Launch").click()
    expect(page.locator("#messages")).to_contain_text("Launched")
    expect(page.locator("#campaign-status")).to_have_text("Sending")
    expect(page.locator("#progress-words")).to_contain_text("Waiting for a worker")
    fits(page, label, "sending")
    launch = campaign.launches.get()
    campaign_launch_run(launch_id=launch.pk)  # a worker freezes the recipients
    dispatch(campaign.pk)  # and the senders send
    expect(page.locator("#campaign-status")).to_have_text("Sent", timeout=10_000)
    expect(page.locator('[data-stat="recipients"]')).to_have_text("2")
    expect(page.locator('[data-stat="sent"]')).to_have_text("2")
    expect(page.locator('[data-skipped="dnc"]')).to_have_text("1")
    expect(page.locator('[data-skipped="no_address"]')).to_have_text("1")
    expect(page.locator("#sends-chart")).to_be_visible()
    expect(page.locator("#targeting")).to_contain_text("Newsletter")
    expect(page.locator("#targeting .chip-added")).to_contain_text("Churned")
    expect(page.frame_locator("#preview-frame").locator("h1")).to_have_text("Hello Ann")
    fits(page, label, "sent")

    # 7. The per-recipient log: everyone frozen, with their status and reason; search.
    page.get_by_role("link", name="Open the log").click()
    rows = page.locator("#log-table tbody tr")
    expect(rows).to_have_count(4)  # ann, bob (sent), cy (no address), dee (dnc)
    expect(page.locator('tr[data-person="dee"]')).to_contain_text("On Do Not Contact")
    expect(page.locator('tr[data-person="ann"] [data-status]')).to_have_text("sent")
    page.get_by_label("Search the log by ID, email or phone").fill("bob")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    fits(page, label, "log")

    # 8. The Campaigns page lists it as sent, with its counts.
    nav_to(page, "Campaigns")
    row = page.locator('#campaign-table tr[data-campaign="Spring sale"]')
    expect(row.locator("[data-status]")).to_have_text("Sent")
    expect(row).to_contain_text("Newsletter")
    fits(page, label, "list")
    if provider == "smtp":
        assert sorted(to[0] for to, _ in server.received) == [
            "ann@example.com", "bob@example.com", "sam@shop.test"]  # fmt: skip
    else:
        assert SandboxMessage.objects.for_workspace(ws).count() == 3

    from config.celery import app

    app.control.purge()  # the tasks the pages queued for workers this test played itself


def test_the_sms_counter_and_the_push_preview(page, viewport):
    """The SMS editor counts characters and segments as one types (GSM-7, then UCS-2 as
    soon as an emoji appears) and the preview counts them for the person; the push editor
    shows a phone's notification with its buttons."""
    ws = shop()
    campaign_sms = Campaign.objects.create(workspace=ws, name="Flash sale text", channel="sms",
                                           everyone=True, content={"body": ""})  # fmt: skip
    campaign_push = Campaign.objects.create(workspace=ws, name="App offer", channel="push",
                                            everyone=True, content={})  # fmt: skip
    label = f"editors-{viewport}"
    sign_in(page)

    page.goto(f"/campaigns/{campaign_sms.pk}/edit/")
    body = page.get_by_label("Message", exact=True)
    count = page.locator("#sms-count")
    body.fill("Hi {{ person.first_name }}, 20% off today only. Reply STOP to opt out.")
    expect(count).to_have_attribute("data-encoding", "GSM-7")
    expect(count).to_have_attribute("data-segments", "1")
    body.fill("x" * 161)
    expect(count).to_contain_text("161 characters · GSM-7 · 2 segments (153 per segment")
    body.fill("Hi {{ person.first_name }} 🎉 " + "x" * 60)
    expect(count).to_have_attribute("data-encoding", "UCS-2")
    expect(count).to_have_attribute("data-segments", "2")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator("#save-state")).to_contain_text("Saved at")
    page.locator("#preview-person").fill("ann")
    page.locator("#preview-person").press("Enter")
    expect(page.locator('#sms-preview [data-preview="body"]')).to_contain_text("Hi Ann 🎉")
    # as written it takes 2 segments; rendered for Ann ("Ann" for the variable), one
    expect(page.locator("#sms-preview-count")).to_contain_text("69 characters, UCS-2: 1 segment.")
    fits(page, label, "sms")

    page.goto(f"/campaigns/{campaign_push.pk}/edit/")
    page.get_by_label("Title", exact=True).fill("A gift for you, {{ person.first_name }}")
    page.get_by_label("Body", exact=True).fill("Open the app for 20% off.")
    page.get_by_label("Opens", exact=True).fill("myapp://offers")
    page.get_by_label("Button 1: title").fill("Show me")
    page.get_by_label("Button 2: title").fill("Later")
    page.get_by_text("iOS and Android options").click()
    page.get_by_label("Colour").fill("purple")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator('[data-error="android__color"]')).to_have_text(
        "Must be a colour as #RRGGBB"
    )
    page.get_by_label("Colour").fill("#6D28D9")
    page.get_by_label("Interruption level").select_option(label="Time sensitive")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator("#save-state")).to_contain_text("Saved at")
    page.locator("#preview-person").fill("bob")
    page.locator("#preview-person").press("Enter")
    push = page.locator("#push-preview")
    expect(push.locator('[data-preview="title"]')).to_have_text("A gift for you, Bob")
    expect(push.locator('[data-preview="button"]')).to_have_text(["Show me", "Later"])
    expect(push).to_contain_text("Tapping opens myapp://offers")
    fits(page, label, "push")
    campaign_push.refresh_from_db()
    assert campaign_push.content["android"]["color"] == "#6D28D9"
    assert [b["id"] for b in campaign_push.content["buttons"]] == ["button-1", "button-2"]
