"""Journey: an ops user opens an audience's page, finds a member, pages through the members,
downloads them as a CSV, opens them on the People page to tag them all, and starts an
import into the audience."""

import csv

import pytest
from playwright.sync_api import expect

from accounts.audit import Actor
from accounts.models import Role
from audiences.models import AudienceMember, MemberSource
from audiences.services import audience_add_people, audience_create
from people.models import Person, PersonTag
from tests.browser.journey import nav_to
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    PersonFactory,
    UserFactory,
    WorkspaceFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CSV_HEADER = [
    "herald_id",
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "added_at",
    "source",
]


def ops_workspace():
    ws = WorkspaceFactory(name="Shop", slug="shop")
    user = UserFactory(email="ops@shop.test")
    MembershipFactory(workspace=ws, user=user, role=Role.OPS)
    return ws


def people(ids):
    return Person.objects.filter(pk__in=ids)


def spring_audience(ws):
    """60 members of "Spring newsletter" (one of them, early, added by a segment), people
    outside it created before and after them, and an "Autumn sale" audience holding some
    of each."""
    before = PersonFactory.create_batch(3, workspace=ws)
    first = PersonFactory.create_batch(5, workspace=ws)
    ann = PersonFactory(
        workspace=ws,
        external_id="crm-ann",
        email="ann.archer@example.test",
        phone="+447700900123",
        first_name="Ann",
        last_name="Archer",
    )
    rest = PersonFactory.create_batch(54, workspace=ws)
    after = PersonFactory.create_batch(4, workspace=ws)
    spring = audience_create(workspace=ws, name="Spring newsletter", actor=Actor(system="tests"))
    audience_add_people(
        audience=spring, people=people([p.pk for p in first + rest]), actor=Actor(system="tests")
    )
    audience_add_people(
        audience=spring,
        people=people([ann.pk]),
        source=MemberSource.SEGMENT,
        actor=Actor(system="tests"),
    )
    autumn = audience_create(workspace=ws, name="Autumn sale", actor=Actor(system="tests"))
    audience_add_people(
        audience=autumn,
        people=people([p.pk for p in before + first + after]),
        actor=Actor(system="tests"),
    )
    members = sorted((p.pk for p in first + [ann] + rest), reverse=True)  # newest first
    return spring, ann, members


def sign_in(page):
    page.goto("/login/")
    page.get_by_label("Email").fill("ops@shop.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def member_rows(page):
    return page.locator("#member-table tbody tr")


def expect_member_ids(page, ids):
    expect(member_rows(page).locator("td:first-child")).to_have_text([str(i) for i in ids])


def search_members(page, text):
    page.get_by_label("Search the members").fill(text)
    page.locator("#member-search").get_by_role("button", name="Search").click()


def download_csv(page, tmp_path) -> list[list[str]]:
    with page.expect_download() as info:
        page.locator("#audience-export").click()
    download = info.value
    assert download.suggested_filename.startswith("audience-spring-newsletter-")
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def tag_everyone_matching(page, count, tag):
    page.get_by_label("Select this page").check()
    page.get_by_role("button", name=f"Select all {count} matching").click()
    expect(page.locator("#selection-label")).to_have_text(f"All {count} matching people selected")
    page.get_by_role("button", name="Manage tags").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Add or remove a tag for {count} people.")
    dialog.get_by_label("Tag").fill(tag)
    dialog.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("alert")).to_contain_text(f"Tagged {count} people with “{tag}”.")


def test_browse_search_download_tag_and_import_into_an_audience(page, tmp_path):
    ws = ops_workspace()
    spring, ann, members = spring_audience(ws)
    ann_added = AudienceMember.objects.get(audience=spring, person=ann).added_at
    sign_in(page)

    # 1. The audiences list leads to the audience, its count and its newest 50 members.
    nav_to(page, "Audiences")
    expect(page.locator("#audience-table [data-count='Spring newsletter']")).to_have_text("60")
    page.get_by_role("link", name="Spring newsletter").click()
    expect(page.get_by_role("heading", name="Spring newsletter")).to_be_visible()
    expect(page.locator("#audience-count")).to_have_text("60")
    expect(page.locator("#member-table thead th")).to_have_text(
        ["ID", "External ID", "Name", "Email", "Phone", "Added", "Source"]
    )
    expect_member_ids(page, members[:50])
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    # 2. Searching by email finds exactly Ann, with how she came in.
    search_members(page, "Ann.Archer@example.test")
    expect(member_rows(page)).to_have_count(1)
    expect(member_rows(page).first.locator("td")).to_have_text(
        [
            str(ann.pk),
            "crm-ann",
            "Ann Archer",
            "ann.archer@example.test",
            "+447700900123",
            ann_added.strftime("%-d %b %Y %H:%M"),
            "Segment",
        ]
    )
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_role("link", name="Clear").click()
    expect(page.get_by_label("Search the members")).to_have_value("")
    expect_member_ids(page, members[:50])

    # 3. Older → shows the last 10 members; ← Newer comes back to the first 50.
    page.get_by_role("link", name="Older →").click()
    expect_member_ids(page, members[50:])
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    page.get_by_role("link", name="← Newer").click()
    expect_member_ids(page, members[:50])
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    # 4. The CSV holds every member, and nobody else.
    rows = download_csv(page, tmp_path)
    assert rows[0] == CSV_HEADER
    assert len(rows) == 1 + 60
    assert [int(r[0]) for r in rows[1:]] == members
    assert next(r for r in rows[1:] if r[1] == "crm-ann")[7] == "Segment"

    # 5. On the People page, filtered to the audience, tag all 60 members at once.
    page.locator("#audience-people").click()
    expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    expect(page.locator("#id_in_audience")).to_have_value("Spring newsletter")
    expect(page.locator("#match-count")).to_have_text("60")
    expect(page.locator("#people-table tbody tr")).to_have_count(50)
    tag_everyone_matching(page, 60, "Spring 2025")
    expect(page.locator("#id_in_audience")).to_have_value("Spring newsletter")  # kept
    tagged = set(
        PersonTag.objects.filter(tag__name="Spring 2025").values_list("person_id", flat=True)
    )
    assert tagged == set(members)

    # 6. From the audience page, an import starts with this audience chosen.
    nav_to(page, "Audiences")
    page.get_by_role("link", name="Spring newsletter").click()
    page.locator("#audience-import").click()
    expect(page.get_by_role("heading", name="Import audiences")).to_be_visible()
    expect(page.get_by_label("One audience for every person in the file")).to_be_checked()
    expect(page.get_by_label("Existing audience")).to_have_value(str(spring.pk))
    expect(page.get_by_label("Existing audience").locator("option:checked")).to_have_text(
        "Spring newsletter"
    )
