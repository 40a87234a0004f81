"""Journey: a marketer builds "City is London AND App Launch at least once in the last 30
days" with the builder, watches the live count, saves it as real-time, reads it on the
segment's page and adds its members to a target audience."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from audiences.models import AudienceMember
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from segments.models import Segment, SegmentKind, SegmentRefresh
from segments.services import segment_refresh_run
from tests.browser.journey import nav_to
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HTMX_BUSY = ".htmx-request, .htmx-swapping, .htmx-settling, .htmx-added"


def settled(page, new_control):
    """Wait until `new_control` is on the page and htmx has wired up what it swapped in
    (it does so a moment after the swap: a change made before then would go unnoticed)."""
    expect(new_control).to_be_visible()
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


def test_build_a_real_time_segment_and_add_its_members_to_an_audience(page):
    ws = WorkspaceFactory(name="Shop", slug="shop")
    MembershipFactory(workspace=ws, user=UserFactory(email="mk@shop.test"), role=Role.MARKETER)
    now = timezone.now()
    launches = []
    for ext, city, days_ago in [
        ("lon-1", "London", 2),
        ("lon-2", "London", 10),
        ("lon-3", "London", 29),
        ("lon-old", "London", 40),
        ("par-1", "Paris", 1),
    ]:
        person_upsert(
            workspace=ws,
            external_id=ext,
            data={"city": city, "first_name": ext},
            actor=Actor(system="tests"),
        )
        launches.append(
            {"person": ext, "name": "App Launch", "occurred_at": now - timedelta(days=days_ago)}
        )
    person_upsert(
        workspace=ws, external_id="lon-none", data={"city": "London"}, actor=Actor(system="tests")
    )
    event_ingest_batch(workspace=ws, items=launches, actor=Actor(system="tests"))

    page.goto("/login/")
    page.get_by_label("Email").fill("mk@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav_to(page, "Segments")
    page.get_by_role("link", name="New segment").click()

    # Condition 1: City is London
    page.get_by_label("Condition 1 attribute").select_option(label="City")
    settled(page, page.get_by_label("Condition 1 value"))
    expect(page.get_by_label("Condition 1 operator")).to_have_value("is")
    page.get_by_label("Condition 1 value").fill("London")
    expect(page.locator("#live-count")).to_have_text("5")  # debounced, no click needed
    expect(page.locator("#preview-words")).to_contain_text("City is London")

    # Condition 2: App Launch at least once in the last 30 days
    page.get_by_role("button", name="Condition", exact=True).click()
    settled(page, page.get_by_label("Condition 2 type"))
    page.get_by_label("Condition 2 type").select_option("event")
    settled(page, page.get_by_label("Condition 2 event"))
    page.get_by_label("Condition 2 event").select_option("App Launch")
    page.get_by_label("Condition 2 when").select_option(label="in the last")
    settled(page, page.get_by_label("Condition 2 amount"))
    page.get_by_label("Condition 2 amount").fill("30")
    expect(page.get_by_label("Condition 2 unit")).to_have_value("days")
    expect(page.locator("#live-count")).to_have_text("3")
    expect(page.locator("#preview-words")).to_contain_text(
        "City is London AND App Launch at least once in the last 30 days"
    )
    expect(page.locator("#sample-members li")).to_have_count(3)

    page.get_by_label("Name").fill("Active Londoners")
    page.get_by_label("Real-time").check()
    page.get_by_role("button", name="Save segment").click()

    expect(page.get_by_role("heading", name="Active Londoners")).to_be_visible()
    expect(page.locator("#rules-words")).to_have_text(
        "City is London AND App Launch at least once in the last 30 days"
    )
    # the first refresh is a job: the page says it waits for a worker, then, once the
    # worker has run it, reloads by itself with the members and the outcome
    expect(page.locator("#refresh-pending")).to_contain_text("Waiting for a worker")
    segment = Segment.objects.get(workspace=ws, name="Active Londoners")
    segment_refresh_run(SegmentRefresh.objects.get(segment=segment, status="queued").pk)
    expect(page.locator("#segment-count")).to_have_text("3")
    expect(page.locator("#refresh-pending")).to_be_hidden()
    expect(
        page.get_by_text("Refreshed “Active Londoners”: 3 entered, 0 left, 3 people.")
    ).to_be_visible()
    expect(page.locator("#member-table tbody tr")).to_have_count(3)
    assert segment.kind == SegmentKind.REALTIME

    page.get_by_label("Audience", exact=True).fill("Spring campaign")
    page.get_by_role("button", name="Add to audience").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Added 3 people to the audience “Spring campaign” (3 members now)."
    )
    members = AudienceMember.objects.filter(audience__name="Spring campaign")
    assert sorted(members.values_list("person__external_id", flat=True)) == [
        "lon-1",
        "lon-2",
        "lon-3",
    ]
