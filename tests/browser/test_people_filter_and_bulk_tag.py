"""Journey: an ops user filters people by tag and city, selects all matching and tags them."""

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from people.models import Person, PersonTag
from people.services.tags import tag_get_or_create, tags_assign
from tests.browser.journey import nav_to
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    PersonFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_filter_by_tag_and_city_then_bulk_tag_everyone_matching(page):
    ws = WorkspaceFactory(name="Shop", slug="shop")
    user = UserFactory(email="ops@shop.test")
    MembershipFactory(workspace=ws, user=user, role=Role.OPS)
    vip_london = [PersonFactory(workspace=ws, city="London") for _ in range(60)]
    vip_paris = [PersonFactory(workspace=ws, city="Paris") for _ in range(3)]
    PersonFactory.create_batch(4, workspace=ws, city="London")  # not VIP
    vip = tag_get_or_create(workspace=ws, name="VIP", actor=Actor(system="tests"))
    tags_assign(
        workspace=ws,
        tag=vip,
        people=Person.objects.filter(pk__in=[p.pk for p in vip_london + vip_paris]),
        actor=Actor(system="tests"),
    )

    page.goto("/login/")
    page.get_by_label("Email").fill("ops@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav_to(page, "People")

    page.get_by_label("Tags", exact=True).fill("VIP")
    page.get_by_label("City").fill("London")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#match-count")).to_have_text("60")
    expect(page.locator("#people-table tbody tr")).to_have_count(50)  # first page

    page.get_by_label("Select this page").check()
    page.get_by_role("button", name="Select all 60 matching").click()
    expect(page.locator("#selection-label")).to_have_text("All 60 matching people selected")
    page.get_by_role("button", name="Manage tags").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Add or remove a tag for 60 people.")
    dialog.get_by_label("Tag").fill("Spring Campaign")
    dialog.get_by_role("button", name="Add tag").click()

    expect(page.get_by_role("alert")).to_contain_text("Tagged 60 people with “Spring Campaign”.")
    expect(page.locator("#match-count")).to_have_text("60")  # the filters are kept
    tagged = set(
        PersonTag.objects.filter(tag__name="Spring Campaign").values_list("person_id", flat=True)
    )
    assert tagged == {p.pk for p in vip_london}
