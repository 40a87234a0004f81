"""Journey: an ops user imports a small CSV, swaps the default tag for `vip-2026` on the
analyze screen, confirms, waits for the import to finish and finds the people tagged."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from accounts.audit import Actor
from people import tasks
from people.imports import services
from people.models import ContactImport, Person, PersonTag, Tag
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV = (
    "Customer ID,E-mail,First name,Last name,City,Plan\n"
    "vip-1,ada@example.com,Ada,Lovelace,London,gold\n"
    "vip-2,alan@example.com,Alan,Turing,Manchester,gold\n"
    "vip-3,grace@example.com,Grace,Hopper,New York,platinum\n"
)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path


@pytest.fixture
def eager_tasks(settings):
    """Tasks run inside the request that enqueues them: no worker in a browser test."""
    from config.celery import app

    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def sign_in(page, email):
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page).not_to_have_url(re.compile("/login/"))


def test_ops_user_imports_contacts_tagged_vip_2026(page, ops_user, workspace, media, eager_tasks):
    source = media / "vip.csv"
    source.write_text(CSV)
    sign_in(page, ops_user.email)

    page.goto("/people/import/")
    page.get_by_label("CSV file").set_input_files(str(source))
    page.get_by_role("button", name="Upload and analyze").click()

    # The analyze screen: what was detected, the mapping, the numbers, the default tag.
    expect(page.locator("#detected")).to_contain_text("UTF-8")
    expect(page.locator("#detected")).to_contain_text("comma (,) separated, with a header row")
    expect(page.locator("[data-stat=new]")).to_have_text("3")
    expect(page.locator("[data-stat=existing]")).to_have_text("0")
    expect(page.locator("[data-stat=errors]")).to_have_text("0")
    expect(page.get_by_label("Column “E-mail”")).to_have_value("email")
    expect(page.get_by_label("Column “Customer ID”")).to_have_value("external_id")
    expect(page.get_by_label("Column “Plan”")).to_have_value("new")
    expect(page.locator("#preview-table")).to_contain_text("Lovelace")
    tags = page.get_by_label("Tags for every imported person")
    expect(tags).to_have_value(re.compile(r"^import \d{4}-\d{2}-\d{2} \d{2}:\d{2}$"))

    tags.fill("")  # remove the default tag...
    tags.fill("vip-2026")  # ...and give this one instead
    page.get_by_role("button", name="Import 3 people").click()

    done = page.locator("#import-done")
    expect(done).to_contain_text("Import finished", timeout=30_000)
    expect(page.locator("[data-stat=created]")).to_have_text("3")
    expect(page.locator("[data-stat=errors]")).to_have_text("0")
    expect(page.locator("#result-tags")).to_have_text("vip-2026")
    expect(page.locator("#import-progress")).not_to_have_attribute("hx-trigger", "every 1s")

    page.get_by_role("link", name="See people").click()
    expect(page.get_by_text("Lovelace")).to_be_visible()
    expect(page.get_by_text("Hopper")).to_be_visible()

    people = Person.objects.for_workspace(workspace)
    assert sorted(people.values_list("external_id", flat=True)) == ["vip-1", "vip-2", "vip-3"]
    assert people.get(external_id="vip-3").attributes == {"plan": "platinum"}
    assert list(Tag.objects.for_workspace(workspace).values_list("name", flat=True)) == ["vip-2026"]
    assert PersonTag.objects.for_workspace(workspace).filter(tag__name="vip-2026").count() == 3


def test_the_progress_page_polls_until_the_import_is_done(page, ops_user, workspace, media,
                                                          monkeypatch):  # fmt: skip
    """Without eager tasks: the page shows the progress bar, htmx polls it every second,
    and the result replaces it when a worker finishes the job."""
    monkeypatch.setattr(tasks.contact_import_analyze_task, "apply_async", lambda *a, **kw: None)
    monkeypatch.setattr(tasks.contact_import_run_task, "apply_async", lambda *a, **kw: None)

    job = services.contact_import_create(
        workspace=workspace,
        uploaded_by=ops_user,
        file=SimpleUploadedFile("vip.csv", CSV.encode()),
        actor=Actor(system="tests"),
    )
    job = services.contact_import_analyze(contact_import=job)
    job = services.contact_import_confirm(
        contact_import=job, options={"tags": ["vip-2026"]}, actor=Actor(system="tests")
    )
    sign_in(page, ops_user.email)

    page.goto(f"/people/import/{job.id}/")
    progress = page.locator("#import-progress")
    expect(progress).to_have_attribute("hx-trigger", "every 1s")
    expect(page.get_by_role("progressbar", name="Import progress")).to_be_visible()
    expect(progress).to_contain_text("Waiting for a worker")

    tasks.contact_import_run_task(job.id)  # a worker picks the job up

    expect(page.locator("#import-done")).to_contain_text("Import finished", timeout=10_000)
    expect(page.locator("[data-stat=created]")).to_have_text("3")
    assert ContactImport.objects.get(pk=job.id).status == "done"
