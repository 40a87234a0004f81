"""Journey: open a profile from the People page and put its email on Do Not Contact."""

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from people.models import DoNotContact
from people.services.people import person_upsert
from tests.browser.journey import nav_to
from tests.factories import PASSWORD, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_open_a_profile_and_add_its_email_to_do_not_contact(page):
    ws = WorkspaceFactory(name="Shop", slug="shop")
    user = UserFactory(email="ops@shop.test")
    MembershipFactory(workspace=ws, user=user, role=Role.OPS)
    person_upsert(
        workspace=ws,
        external_id="crm-7",
        data={
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "Ada@Example.com",
            "phone": "+447911123456",
        },
        actor=Actor(system="tests"),
    )

    page.goto("/login/")
    page.get_by_label("Email").fill("ops@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto("/people/")
    page.get_by_label("Search").fill("ada@example.com")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="crm-7").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Ada Lovelace")
    expect(page.locator("[data-dnc=email]")).to_have_text("reachable")
    page.get_by_role("button", name="Add email to Do Not Contact").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "ada@example.com is on the Email Do Not Contact list"
    )
    expect(page.locator("[data-dnc=email]")).to_have_text("blocked")
    expect(page.locator("[data-dnc=sms]")).to_have_text("reachable")

    nav_to(page, "Do Not Contact")
    expect(page.locator("#dnc-table")).to_contain_text("ada@example.com")
    entry = DoNotContact.objects.get(workspace=ws)
    assert (entry.channel, entry.address, entry.source) == ("email", "ada@example.com", "manual")
