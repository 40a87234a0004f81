"""Journey: a marketer creates an in-app banner on the Campaigns page (the hero placement,
a title with markup in it, a button), targets Everyone and puts it live; the demo page
shows it, filled by static/herald-banners.js through the public API with the text shown
literally; a person dismisses it and it stays gone for them; another live banner is
cancelled from its page and disappears from the demo page. At both widths (screenshots
under /tmp/banner-*.png)."""

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from campaigns.models import Campaign
from campaigns.services import campaign_create, campaign_launch
from tests.browser.journey import nav_to
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
TITLE = "Summer sale <b>now</b>"


def settled(page):
    page.wait_for_load_state("networkidle")
    page.wait_for_function(f"() => !document.querySelector({HTMX_BUSY!r})")


@pytest.fixture(autouse=True)
def fresh_banner_cache():
    """Ids restart with each test database; the Redis cache of people's states does not."""
    from tests.campaigns.test_banners import clear_banner_cache

    clear_banner_cache()
    yield
    clear_banner_cache()


def test_create_a_banner_see_it_dismiss_it_and_cancel_another(page, viewport):
    ws = WorkspaceFactory(name="Shop", slug="shop")
    MembershipFactory(workspace=ws, user=UserFactory(email="mk@shop.test"), role=Role.MARKETER)
    PersonFactory(workspace=ws, external_id="ann", first_name="Ann", email="ann@example.com")
    old = campaign_create(workspace=ws, name="Old news", channel="banner", everyone=True,
                          actor=ACTOR, content={"placement": "top", "title": "Old news",
                                                "body": "Yesterday's offer"})  # fmt: skip
    campaign_launch(campaign=old, actor=ACTOR)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/login/")
    page.get_by_label("Email").fill("mk@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")

    # 1. A new banner, written, targeted at Everyone, put live.
    nav_to(page, "Campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("Summer banner")
    page.get_by_label("In-app banner").check()
    page.get_by_role("button", name="Create and write the message").click()
    expect(page.locator("#messages")).to_contain_text("Campaign “Summer banner” created")
    page.get_by_label("Placement").select_option("hero")
    page.get_by_label("Title").fill(TITLE)
    page.get_by_label("Text").fill("Everything 20% off.")
    page.get_by_label("Button label").fill("Shop now")
    page.get_by_label("Button link").fill("javascript:alert(1)")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator('[data-error="cta_url"]')).to_contain_text("http")  # refused
    page.get_by_label("Button link").fill("https://shop.example.com/summer")
    page.get_by_role("button", name="Save message").click()
    expect(page.locator("#save-state")).to_contain_text("Saved at")
    expect(page.locator("#banner-preview")).to_contain_text(TITLE)
    page.get_by_label("Everyone in the workspace").check()
    settled(page)
    page.screenshot(path=f"/tmp/banner-{viewport}-editor.png", full_page=True)
    page.get_by_role("button", name="Go live").click()
    expect(page.locator("#campaign-status")).to_have_text("Live")
    banner = Campaign.objects.for_workspace(ws).get(name="Summer banner")
    assert banner.status == "live" and banner.everyone

    # 2. The demo page shows both, the title as text (no markup made of it).
    page.goto("/campaigns/banners/demo/")
    hero = page.locator("#placement-hero")
    expect(hero.locator(".herald-banner")).to_have_count(1)
    expect(hero.locator(".herald-banner__title")).to_have_text(TITLE)
    assert hero.locator("b").count() == 0
    expect(page.locator("#placement-top")).to_contain_text("Old news")
    page.screenshot(path=f"/tmp/banner-{viewport}-demo.png", full_page=True)

    # 3. Ann dismisses it: gone at once, and on the next page view.
    page.goto("/campaigns/banners/demo/?person=ann")
    hero = page.locator("#placement-hero")
    expect(hero.locator(".herald-banner")).to_have_count(1)
    hero.get_by_role("button", name=f"Dismiss: {TITLE}").click()
    expect(hero.locator(".herald-banner")).to_have_count(0)
    page.reload()
    expect(page.locator("#placement-top .herald-banner")).to_have_count(1)  # loaded
    expect(page.locator("#placement-hero .herald-banner")).to_have_count(0)
    page.goto("/campaigns/banners/demo/")  # an anonymous visitor still sees it
    expect(page.locator("#placement-hero .herald-banner")).to_have_count(1)

    # 4. The old banner cancelled from its page: the demo page no longer shows it.
    page.goto(f"/campaigns/{old.pk}/")
    page.locator("#lifecycle").get_by_role("button", name="Cancel").click()
    expect(page.locator("#campaign-status")).to_have_text("Cancelled")
    page.goto("/campaigns/banners/demo/")
    expect(page.locator("#placement-hero .herald-banner")).to_have_count(1)
    expect(page.locator("#placement-top .herald-banner")).to_have_count(0)
