"""Journey: the demo marketer signs in, sees the dashboard, switches workspace."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.models import Workspace
from people.models import Person
from tests.browser.journey import open_menu

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _people(slug):
    return f"{Person.objects.for_workspace(Workspace.objects.get(slug=slug)).count():,}"


def test_marketer_signs_in_switches_workspace_and_sees_the_dashboard(page):
    call_command("seed_demo", verbosity=0)
    acme, globex = _people("acme-retail"), _people("globex-mobile")

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/"))
    page.get_by_label("Email").fill("marketer@demo.herald")
    page.get_by_label("Password").fill("herald-demo")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Acme Retail")
    expect(page.locator("[data-stat=people]")).to_have_text(acme)
    open_menu(page)
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    expect(nav.get_by_role("link", name="Settings")).to_have_count(0)  # marketers have none

    page.get_by_label("Workspace").select_option(label="Globex Mobile")
    expect(page.get_by_role("heading", level=1)).to_have_text("Globex Mobile")
    expect(page.get_by_role("alert")).to_contain_text("You are now working in Globex Mobile")
    expect(page.locator("[data-stat=people]")).to_have_text(globex)
    expect(page.get_by_text("time zone America/New_York")).to_be_visible()


def test_wrong_password_shows_a_message_and_stays_on_the_form(page, db):
    call_command("seed_demo", verbosity=0)
    page.goto("/login/")
    page.get_by_label("Email").fill("marketer@demo.herald")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct email and password")
    expect(page).to_have_url(re.compile(r"/login/"))
