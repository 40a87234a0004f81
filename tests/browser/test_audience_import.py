"""Journeys: import both example files through the UI and see the audiences, their counts
and a member's profile listing them; replace an audience's members with a file while the
job page polls its progress; read an error report."""

from pathlib import Path

import pytest
from django.db import connection
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.jobs import JobStatus
from accounts.models import Role
from audiences.import_services import audience_import_run
from audiences.models import AudienceImport
from audiences.services import audience_add_people, audience_create
from people.models import Person
from tests.browser.journey import nav_to
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    PersonFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DATA = Path("/work/shared/data")
if not DATA.exists():
    DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def eager_celery(settings):
    """The import task runs inside the request that starts it (after its commit)."""
    from config.celery import app

    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def ops_workspace():
    ws = WorkspaceFactory(name="Shop", slug="shop")
    user = UserFactory(email="ops@shop.test")
    MembershipFactory(workspace=ws, user=user, role=Role.OPS)
    return ws


def sign_in(page):
    page.goto("/login/")
    page.get_by_label("Email").fill("ops@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def open_import_page(page):
    nav_to(page, "Audiences")
    page.get_by_role("link", name="Import audiences").click()
    expect(page.get_by_role("heading", name="Import audiences")).to_be_visible()


def test_import_both_example_files_and_see_the_audiences_and_a_profile(page, media, eager_celery):
    ws = ops_workspace()
    with connection.cursor() as cursor:  # the example files name Herald ids 123..245
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('people_person', 'id'), "
            "GREATEST(10000, (SELECT COALESCE(MAX(id), 0) FROM people_person)))"
        )
    for n in (123, 124, 125, 245):
        PersonFactory(workspace=ws, id=n, external_id=f"crm-{n}")
    sign_in(page)

    # 1. Each row names its audience, by Herald id, imported at once.
    open_import_page(page)
    page.get_by_label("Each row names its audience: identifier; audience name").check()
    expect(page.get_by_label("Existing audience")).to_be_hidden()
    page.get_by_label("Identifier used in the file").select_option(label="Herald ID")
    page.get_by_label("CSV file").set_input_files(str(DATA / "audience_per_row_example.csv"))
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.locator("#import-result")).to_contain_text(
        "Imported: added 4 memberships and created 4 audiences."
    )
    expect(page.locator("[data-count=matched]")).to_have_text("4")
    expect(page.locator("[data-count=unmatched]")).to_have_text("0")
    expect(page.locator("[data-count=invalid]")).to_have_text("0")
    for n in (1, 2, 3, 4):
        expect(page.locator("#audiences-created")).to_contain_text(f"Audience {n}")

    # 2. One audience for everyone, by Herald id, analyzed first, then imported for real.
    page.get_by_role("link", name="New import").click()
    page.get_by_label("One audience for every person in the file").check()
    page.get_by_label("or a new audience").fill("All four")
    page.get_by_label("Identifier used in the file").select_option(label="Herald ID")
    page.get_by_label("CSV file").set_input_files(str(DATA / "audience_single_example.csv"))
    page.get_by_role("button", name="Analyze").click()

    expect(page.locator("#import-result")).to_contain_text(
        "Analysis only, nothing was changed: the import would add 4 people to “All four” "
        "and create 1 audience."
    )
    expect(page.locator("[data-count=matched]")).to_have_text("4")
    page.get_by_role("button", name="Import for real").click()
    expect(page.locator("#import-result")).to_contain_text(
        "Imported: added 4 people to “All four” and created 1 audience."
    )

    # 3. The Audiences page lists them with their counts.
    page.get_by_role("link", name="See the audiences").click()
    rows = page.locator("#audience-table tbody tr")
    expect(rows.filter(has_text="Audience 1").locator("td").nth(1)).to_have_text("1")
    expect(rows.filter(has_text="All four").locator("td").nth(1)).to_have_text("4")

    # 4. A member's profile lists the audiences the imports put them in.
    page.goto(f"/people/{Person.objects.get(external_id='crm-123').pk}/")
    audiences = page.locator("#audiences")
    expect(audiences).to_contain_text("Audience 1")
    expect(audiences).to_contain_text("All four")
    expect(audiences).not_to_contain_text("Audience 2")


def test_replace_an_audiences_members_with_a_file_while_the_page_polls(page, media, tmp_path):
    ws = ops_workspace()
    ann, bob, cat, dan = (
        PersonFactory(workspace=ws, external_id=e) for e in ("ann", "bob", "cat", "dan")
    )
    vip = audience_create(workspace=ws, name="VIP", actor=Actor(system="tests"))
    audience_add_people(
        audience=vip,
        people=Person.objects.filter(pk__in=[ann.pk, bob.pk, cat.pk]),
        actor=Actor(system="tests"),
    )
    path = tmp_path / "vip.csv"
    path.write_text("external_id\ncat\ndan\n")
    sign_in(page)

    page.goto(f"/audiences/import/?audience={vip.pk}")
    expect(page.get_by_label("Existing audience")).to_have_value(str(vip.pk))
    page.get_by_label("Replace its members with the file").check()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Import", exact=True).click()

    # No worker yet: the page shows the progress bar and polls.
    expect(page.locator("#import-phase")).to_have_text("Waiting for a worker…")
    expect(page.get_by_role("progressbar")).to_be_visible()
    job = AudienceImport.objects.get()
    assert job.status == JobStatus.QUEUED
    audience_import_run(import_id=job.pk)  # the worker picks it up

    expect(page.locator("#import-result")).to_contain_text(
        "Imported: added 1 person to “VIP” and removed 2.", timeout=10_000
    )
    expect(page.get_by_role("progressbar")).to_have_count(0)
    expect(page.locator("#import-result")).to_contain_text(
        "The first line (“external_id”) was read as a header and skipped."
    )
    page.get_by_role("link", name="See the audiences").click()
    page.get_by_role("link", name="VIP").click()
    expect(page.locator("#audience-count")).to_have_text("2")
    expect(page.locator("#member-table")).to_contain_text("cat")
    expect(page.locator("#member-table")).to_contain_text("dan")
    # by the external id cell: a generated name (Suzanne, Joanna) may contain "ann"
    members = page.locator("#member-table tbody tr")
    expect(members).to_have_count(2)
    expect(members.get_by_text("ann", exact=True)).to_have_count(0)


def test_read_an_error_report(page, media, eager_celery, tmp_path):
    ws = ops_workspace()
    PersonFactory(workspace=ws, external_id="ok-1")
    path = tmp_path / "messy.csv"
    path.write_text(
        'ok-1; Spring\nghost; Spring\nok-1\n=HYPERLINK("http://x.test"); Spring\nghost; Spring\n'
    )
    sign_in(page)
    open_import_page(page)
    page.get_by_label("Each row names its audience: identifier; audience name").check()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Import", exact=True).click()

    expect(page.locator("[data-count=matched]")).to_have_text("1")
    expect(page.locator("[data-count=unmatched]")).to_have_text("2")
    expect(page.locator("[data-count=invalid]")).to_have_text("1")
    problems = page.locator("#import-problems tbody tr")
    expect(problems).to_have_count(3)
    expect(problems.nth(0)).to_contain_text("2")
    expect(problems.nth(0)).to_contain_text("ghost; Spring")
    expect(problems.nth(0)).to_contain_text(
        "no person in this workspace has this external id (repeated on 1 more line)"
    )
    expect(problems.nth(1)).to_contain_text("expected “identifier; audience name”")
    expect(problems.nth(2)).to_contain_text('=HYPERLINK("http://x.test"); Spring')

    link = page.get_by_role("link", name="Download the error report (CSV)")
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    lines = response.text().splitlines()
    assert lines[0] == "line,reason,raw"
    assert lines[1].startswith("2,no person in this workspace has this external id")
    escaped = '"\'=HYPERLINK(""http://x.test""); Spring"'
    assert lines[3] == f"4,no person in this workspace has this external id,{escaped}"
