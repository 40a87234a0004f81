"""Journey: a marketer opens the Email channel's Segments tab from the Channels page, adds
two Herald segments to the list and finds one by searching, then on the Audiences tab
creates an audience that includes one and excludes the other, and reads its live count
(and how many are reachable by email) beside the estimate, and its definition in words.
The pages fit the screen at both widths (screenshots under /tmp/channel_lists-*.png)."""

import re

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from people.models import Person
from people.services.dnc import dnc_add
from segments.services import segment_create, static_members_change
from tests.browser.journey import nav_to
from tests.browser.test_layout import LAYOUT_PROBLEMS
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


def static(ws, name, people):
    segment = segment_create(workspace=ws, name=name, kind="static", actor=ACTOR)
    static_members_change(
        segment=segment,
        people=Person.objects.filter(pk__in=[p.pk for p in people]),
        add=True,
        actor=ACTOR,
    )
    return segment


def shop():
    """Buyers: Ann (email), Bob (email, churned), Cy (phone only), Dee (email, on Do Not
    Contact); Churned: Bob."""
    ws = WorkspaceFactory(name="Shop", slug="shop")
    MembershipFactory(workspace=ws, user=UserFactory(email="mk@shop.test"), role=Role.MARKETER)
    ann = PersonFactory(workspace=ws, email="ann@example.com", phone="")
    bob = PersonFactory(workspace=ws, email="bob@example.com", phone="")
    cy = PersonFactory(workspace=ws, email="", phone="+14155550103")
    dee = PersonFactory(workspace=ws, email="dee@example.com", phone="")
    dnc_add(workspace=ws, channel="email", address="dee@example.com", actor=ACTOR)
    static(ws, "Spring buyers", [ann, bob, cy, dee])
    static(ws, "Churned customers", [bob])
    static(ws, "Newsletter", [ann])
    return ws


def settled(page):
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


def fits(page, viewport, name):
    page.wait_for_load_state("networkidle")
    settled(page)
    page.screenshot(path=f"/tmp/channel_lists-{viewport}-{name}.png", full_page=True)
    problems = page.evaluate(LAYOUT_PROBLEMS)
    assert not problems, f"{name} at {viewport}: {problems}"


def add_segment(page, name):
    page.get_by_label("Herald segment").select_option(label=name)
    page.get_by_role("button", name="Add to the Email list").click()
    expect(page.locator("#messages")).to_contain_text(f"“{name}” is now in the Email list.")


def test_a_marketer_lists_segments_on_email_and_builds_an_audience(page, viewport):
    shop()
    page.goto("/login/")
    page.get_by_label("Email").fill("mk@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")

    # 1. From the Channels page to the Email channel's Segments tab.
    nav_to(page, "Channels")
    page.locator('[data-lists="email"]').get_by_role("link", name="Segments of Email").click()
    expect(page.get_by_role("heading", name="Email", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Segments", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("#entry-table")).to_contain_text("No segments in the Email list yet")

    # 2. Two Herald segments into the list, with their people counts.
    add_segment(page, "Spring buyers")
    add_segment(page, "Churned customers")
    rows = page.locator("#entry-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator('[data-count="Spring buyers"]')).to_have_text("4")
    expect(page.locator('[data-count="Churned customers"]')).to_have_text("1")
    picker = page.get_by_label("Herald segment")
    expect(picker.locator("option", has_text="Newsletter")).to_have_count(1)
    expect(picker.locator("option", has_text="Everyone (built-in)")).to_have_count(1)
    expect(picker.locator("option", has_text="Spring buyers")).to_have_count(0)  # listed

    # 3. Searching narrows the list as one types (htmx), and the address keeps the search.
    page.get_by_label("Search the Email segments by ID or name").fill("spring")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Spring buyers")
    expect(page).to_have_url(re.compile(r"/channels/email/segments/\?q=spring"))
    page.get_by_label("Search the Email segments by ID or name").fill("")
    expect(rows).to_have_count(2)

    # 4. Turned off, a segment shows so (the row swapped in place) and filters apart.
    switch = page.get_by_role("switch", name="Active: Churned customers")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(page.get_by_role("switch", name="Active: Churned customers")).to_have_attribute(
        "aria-checked", "false"
    )
    settled(page)
    page.get_by_label("Show").select_option(label="Inactive")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Churned customers")
    page.get_by_role("switch", name="Active: Churned customers").click()
    expect(page.get_by_role("switch", name="Active: Churned customers")).to_have_attribute(
        "aria-checked", "true"
    )
    settled(page)
    page.get_by_label("Show").select_option(label="Active and inactive")
    expect(rows).to_have_count(2)
    fits(page, viewport, "segments")

    # 5. The Audiences tab: a new audience including the buyers, excluding the churned.
    page.get_by_role("link", name="Audiences", exact=True).click()
    expect(page.locator("#audience-table")).to_contain_text("No Email audiences yet.")
    page.get_by_role("link", name="New audience").click()
    page.get_by_label("Name", exact=True).fill("Spring sale")
    page.get_by_label("Estimated volume").fill("5000")
    page.locator("#picker-include").get_by_label("Spring buyers").check()
    page.locator("#picker-exclude").get_by_label("Spring buyers").check()
    page.locator("#picker-exclude").get_by_label("Churned customers").check()
    fits(page, viewport, "audience-form")
    page.get_by_role("button", name="Create the audience").click()
    # the same segment on both sides is refused at the exclude picker, ticks kept
    expect(page.locator("#picker-exclude")).to_contain_text(
        "“Spring buyers” is both included and excluded: it would count nobody."
    )
    expect(page.locator("#picker-include").get_by_label("Spring buyers")).to_be_checked()
    page.locator("#picker-exclude").get_by_label("Spring buyers").uncheck()
    page.get_by_role("button", name="Create the audience").click()

    # 6. Its page: the live count beside the estimate, the reachable part, the definition.
    expect(page.locator("#messages")).to_contain_text("Audience “Spring sale” created.")
    expect(page.get_by_role("heading", name="Spring sale")).to_be_visible()
    expect(page.locator('[data-count="estimate"]')).to_have_text("5,000")
    expect(page.locator('[data-count="people"]')).to_have_text("3")  # Ann, Cy, Dee
    expect(page.locator('[data-count="reachable"]')).to_have_text("1")  # Ann only by email
    expect(page.locator("#audience-words")).to_have_text(
        "People in “Spring buyers”, and not in “Churned customers”."
    )
    fits(page, viewport, "audience")

    # 7. The list shows the same, each row counting live.
    page.get_by_role("link", name="Email audiences").click()
    row = page.locator('#audience-table tr[data-audience="Spring sale"]')
    expect(row.locator("[data-estimate]")).to_have_text("5,000")
    expect(row.locator("[data-people]")).to_have_text("3")
    expect(row.locator("[data-reachable]")).to_have_text("1 reachable")
    expect(row).to_contain_text("People in “Spring buyers”, and not in “Churned customers”.")
    fits(page, viewport, "audiences")

    # 8. The SMS channel keeps its own list.
    page.get_by_role("navigation", name="Channel").get_by_role("link", name="SMS").click()
    expect(page.get_by_role("heading", name="SMS", exact=True)).to_be_visible()
    expect(page.locator("#audience-table")).to_contain_text("No SMS audiences yet.")


def test_the_other_pages_of_the_tabs_fit_the_screen(page, viewport):
    """An entry's page, the upload form, the Klaviyo source, a sync's and an export's job
    pages and a Meta audience's page, as an admin sees them (every write button shown),
    with long names and ids."""
    from channels import list_services
    from channels.models import ChannelSync, MetaExport
    from channels.services import provider_set

    ws = shop()
    MembershipFactory(workspace=ws, user=UserFactory(email="admin@shop.test"), role=Role.ADMIN)
    long = "Customers who bought twice in spring and opened the Featherstonehaugh newsletter"
    entry = list_services.channel_segment_add(
        workspace=ws, channel="meta", segment=static(ws, long, []), actor=ACTOR
    )
    list_services.channel_segment_update(
        entry=entry,
        changes={"external_id": "XyZ12AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
                 "link": "https://www.klaviyo.com/lists/XyZ12AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"},
        actor=ACTOR,
    )  # fmt: skip
    audience = list_services.channel_audience_create(
        workspace=ws, channel="meta", data={"name": long, "include": [entry.pk]}, actor=ACTOR
    )
    list_services.channel_audience_set_meta_id(
        audience=audience, meta_audience_id="23850012345678901", actor=ACTOR
    )
    provider_set(workspace=ws, channel="meta", kind="meta", settings={"ad_account_id": "123"},
                 secrets={"access_token": "token"}, actor=ACTOR)  # fmt: skip
    list_services.segment_source_set(
        workspace=ws, channel="meta", kind="klaviyo", settings={"schedule_minutes": 60},
        secrets={"api_key": "pk_x"}, actor=ACTOR,
    )  # fmt: skip
    running = ChannelSync.objects.create(
        workspace=ws, channel="meta", status="running", total_rows=400, processed_rows=130,
        groups=4, detail="Reading the profiles of “VIP customers” (list 2 of 4)…",
    )  # fmt: skip
    done = MetaExport.objects.create(
        workspace=ws, audience=audience, status="done", replace=True, batches=3, sent=25_000,
        invalid=12, skipped=40, detail="25,000 people sent to Meta in 3 batches.",
    )  # fmt: skip
    page.goto("/login/")
    page.get_by_label("Email").fill("admin@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    for name, url in (
        ("meta-segments", "/channels/meta/segments/"),
        ("entry", f"/channels/meta/segments/{entry.pk}/"),
        ("upload", "/channels/meta/segments/upload/"),
        ("source", "/channels/meta/source/"),
        ("sync", f"/channels/meta/syncs/{running.pk}/"),
        ("meta-audience", f"/channels/meta/audiences/{audience.pk}/"),
        ("export", f"/channels/meta/exports/{done.pk}/"),
        ("channels", "/channels/"),
    ):
        assert page.goto(url).status == 200, url
        fits(page, viewport, name)
    # the running sync's page moves on its own once the job does
    page.goto(f"/channels/meta/syncs/{running.pk}/")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "running")
    ChannelSync.objects.filter(pk=running.pk).update(status="done", detail="Synced 4 lists.")
    expect(page.locator("#job-result")).to_have_text("Synced 4 lists.", timeout=6000)
