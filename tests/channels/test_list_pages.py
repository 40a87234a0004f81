"""A channel's Segments and Audiences tabs in the UI (channels/list_views.py): a Herald
segment added, searched, edited, turned off and removed (refused while an audience uses
it); a CSV uploaded as a static segment through the audience import; the Klaviyo source
and "Sync now"; audiences with their errors at the fields, live counts, clones and
refusals; Meta's custom audience and export; viewers read only; channels and workspaces
apart."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.models import Role
from audiences.import_services import audience_import_run
from channels import list_services
from channels.models import ChannelAudience, ChannelSegment, ChannelSync, MetaExport
from channels.secrets import unseal
from channels.selectors import segment_source
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.models import Segment
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
HTMX = {"HTTP_HX_REQUEST": "true"}


def static(workspace, name, people=()):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(
        segment=segment,
        people=Person.objects.filter(pk__in=[p.pk for p in people]),
        add=True,
        actor=ACTOR,
    )
    return segment


def entry_of(workspace, segment, channel="email", **changes):
    entry = list_services.channel_segment_add(
        workspace=workspace, channel=channel, segment=segment, actor=ACTOR
    )
    if changes:
        list_services.channel_segment_update(entry=entry, changes=changes, actor=ACTOR)
    return entry


def audience_of(workspace, name, include, exclude=(), channel="email", **data):
    return list_services.channel_audience_create(
        workspace=workspace,
        channel=channel,
        data={"name": name, "include": [e.pk for e in include],
              "exclude": [e.pk for e in exclude], **data},
        actor=ACTOR,
    )  # fmt: skip


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def people(workspace):
    ann = PersonFactory(workspace=workspace, email="ann@example.com", phone="+14155550101")
    bob = PersonFactory(workspace=workspace, email="bob@example.com", phone="")
    cy = PersonFactory(workspace=workspace, email="", phone="+14155550103")
    dee = PersonFactory(workspace=workspace, email="dee@example.com", phone="")
    return ann, bob, cy, dee


@pytest.fixture
def marketer_client(member_client):
    return member_client(Role.MARKETER)


# --- the Segments tab ------------------------------------------------------------------


def test_a_marketer_adds_a_herald_segment_searches_edits_and_turns_it_off(
    marketer_client, workspace, people
):
    vip = static(workspace, "VIP", people[:2])
    static(workspace, "Churned", people[1:2])
    page = marketer_client.get("/channels/email/segments/")
    assert page.status_code == 200
    picker = re.search(r'<select name="segment".*?</select>', page.content.decode(), re.S)[0]
    assert "VIP" in picker and "Churned" in picker

    added = marketer_client.post("/channels/email/segments/add/", {"segment": vip.pk}, follow=True)
    assert "“VIP” is now in the Email list." in text(added)
    entry = ChannelSegment.objects.get(workspace=workspace, channel="email", segment=vip)
    row = re.search(rf'<tr id="entry-{entry.pk}".*?</tr>', added.content.decode(), re.S)[0]
    assert ">VIP</a>" in row and "Herald segment" in row and 'data-count="VIP">2<' in row
    picker = re.search(r'<select name="segment".*?</select>', added.content.decode(), re.S)[0]
    assert "VIP" not in picker and "Churned" in picker  # not offered twice

    # adding it again (a stale page) is refused at the field
    again = marketer_client.post("/channels/email/segments/add/", {"segment": vip.pk})
    assert again.status_code == 200 and "Choose one of the segments listed" in text(again)

    edit_url = f"/channels/email/segments/{entry.pk}/"
    bad = marketer_client.post(edit_url, {"name": "VIP", "external_id": "", "link": "ftp://x"})
    assert bad.status_code == 200
    assert "A link is a web address (https://…)." in text(bad)
    assert re.search(r'name="link"[^>]*is-invalid|is-invalid[^>]*name="link"', bad.content.decode())
    saved = marketer_client.post(
        edit_url,
        {"name": "VIP customers", "external_id": "KL-42",
         "link": "https://www.klaviyo.com/list/KL-42"},
        follow=True,
    )  # fmt: skip
    assert "“VIP customers” is saved." in text(saved)
    entry.refresh_from_db()
    assert (entry.name, entry.external_id) == ("VIP customers", "KL-42")
    assert Segment.objects.get(pk=vip.pk).name == "VIP"  # the Herald segment keeps its name
    assert (
        'href="https://www.klaviyo.com/list/KL-42" target="_blank" rel="noopener noreferrer"'
        in (saved.content.decode())
    )

    # search by ID or name, a whole page or (htmx) just the results
    assert "VIP customers" in text(marketer_client.get("/channels/email/segments/", {"q": "kl-4"}))
    found = marketer_client.get(
        "/channels/email/segments/", {"q": "customers"}, HTTP_HX_TARGET="segment-results", **HTMX
    )
    assert "VIP customers" in text(found) and "<html" not in found.content.decode()
    assert found.content.decode().lstrip().startswith('<div id="segment-results"')
    none = marketer_client.get("/channels/email/segments/", {"q": "nothing-like-it"})
    assert "No segment of the Email list matches." in text(none)

    # turn it off (htmx: the row comes back), then filter
    off = marketer_client.post(f"{edit_url}active/", {"active": "0"}, **HTMX)
    assert off.status_code == 200
    assert 'class="entry-inactive"' in off.content.decode() and "Inactive" in text(off)
    entry.refresh_from_db()
    assert entry.active is False
    assert "VIP customers" not in text(
        marketer_client.get("/channels/email/segments/", {"active": "active"})
    )
    assert "VIP customers" in text(
        marketer_client.get("/channels/email/segments/", {"active": "inactive"})
    )
    # an inactive entry is not offered to audiences
    form = marketer_client.get("/channels/email/audiences/new/")
    assert "VIP customers" not in text(form)
    assert marketer_client.post(f"{edit_url}active/", {"active": "maybe"}).status_code == 400
    on = marketer_client.post(f"{edit_url}active/", {"active": "1"}, follow=True)
    assert "“VIP customers” is active." in text(on)


def test_channels_are_independent_and_workspaces_apart(
    marketer_client, workspace, other_workspace, people
):
    vip = static(workspace, "VIP", people)
    entry = entry_of(workspace, vip, "email")
    assert "VIP" in text(marketer_client.get("/channels/email/segments/"))
    sms = marketer_client.get("/channels/sms/segments/")
    assert f'id="entry-{entry.pk}"' not in sms.content.decode()
    assert "No segments in the SMS list yet" in text(sms)
    # the email entry is not the SMS list's, nor an unknown channel's
    assert marketer_client.get(f"/channels/sms/segments/{entry.pk}/").status_code == 404
    assert marketer_client.get(f"/channels/fax/segments/{entry.pk}/").status_code == 404
    assert marketer_client.get("/channels/fax/segments/").status_code == 404
    # another workspace's entry and segment
    theirs = entry_of(other_workspace, static(other_workspace, "Theirs"), "email")
    assert marketer_client.get(f"/channels/email/segments/{theirs.pk}/").status_code == 404
    assert marketer_client.post(f"/channels/email/segments/{theirs.pk}/delete/").status_code == 404
    refused = marketer_client.post("/channels/email/segments/add/", {"segment": theirs.segment_id})
    assert "Choose one of the segments listed" in text(refused)
    assert not ChannelSegment.objects.filter(workspace=workspace, segment=theirs.segment).exists()


def test_removing_an_entry_is_refused_while_an_audience_uses_it(marketer_client, workspace, people):
    vip = entry_of(workspace, static(workspace, "VIP", people))
    audience_of(workspace, "Spring sale", [vip])
    refused = marketer_client.post(f"/channels/email/segments/{vip.pk}/delete/", follow=True)
    assert "“VIP” is used by the audience “Spring sale”: take it out of them first." in text(
        refused
    )
    assert ChannelSegment.objects.filter(pk=vip.pk).exists()

    other = entry_of(workspace, static(workspace, "Other"))
    removed = marketer_client.post(f"/channels/email/segments/{other.pk}/delete/", follow=True)
    assert "“Other” is out of the Email list (its Herald segment stays)." in text(removed)
    assert not ChannelSegment.objects.filter(pk=other.pk).exists()
    assert Segment.objects.filter(pk=other.segment_id).exists()


def test_the_confirm_of_a_synced_entry_says_a_sync_may_bring_it_back(marketer_client, workspace):
    synced = ChannelSegment.objects.create(
        workspace=workspace, channel="email", segment=static(workspace, "Klaviyo VIP"),
        name="Klaviyo VIP", source="klaviyo", source_ref="list:Xy12",
    )  # fmt: skip
    herald = entry_of(workspace, static(workspace, "Own"))
    page = marketer_client.get("/channels/email/segments/").content.decode()
    row = re.search(rf'<tr id="entry-{synced.pk}".*?</tr>', page, re.S)[0]
    assert "A later sync from Klaviyo may bring it back." in row and ">Klaviyo<" in row
    row = re.search(rf'<tr id="entry-{herald.pk}".*?</tr>', page, re.S)[0]
    assert "data-confirm=" in row and "A later sync" not in row


def test_a_csv_upload_becomes_a_static_segment_through_the_audience_import(
    marketer_client, workspace, people
):
    ann, bob, *_ = people
    form = marketer_client.get("/channels/sms/segments/upload/")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.content.decode()
    csv = SimpleUploadedFile("vip.csv", b"email\nann@example.com\nBOB@example.com\nnobody@x.io\n")
    answer = marketer_client.post(
        "/channels/sms/segments/upload/", {"file": csv, "name": "VIP import", "identifier": "email"}
    )
    entry = ChannelSegment.objects.get(workspace=workspace, channel="sms")
    assert (entry.name, entry.source) == ("VIP import", "csv")
    job = entry.audience_import
    assert answer.status_code == 302
    assert answer["Location"] == f"/audiences/import/{job.pk}/"
    assert not ChannelSegment.objects.filter(workspace=workspace, channel="email").exists()

    audience_import_run(import_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done" and (job.matched, job.unmatched) == (2, 1)
    members = entry.segment.memberships.filter(exited_at__isnull=True)
    assert set(members.values_list("person_id", flat=True)) == {ann.pk, bob.pk}
    listed = marketer_client.get("/channels/sms/segments/").content.decode()
    assert 'data-count="VIP import">2<' in listed

    # refusals at the fields, and nothing made
    not_text = SimpleUploadedFile("x.csv", b"\x00\x01\x02binary" * 100)
    refused = marketer_client.post(
        "/channels/sms/segments/upload/", {"file": not_text, "name": "Junk", "identifier": "email"}
    )
    assert refused.status_code == 200
    assert re.search(r'id="file-error">[^<]+', refused.content.decode())
    taken = marketer_client.post(
        "/channels/sms/segments/upload/",
        {"file": SimpleUploadedFile("v.csv", b"ann@example.com\n"), "name": "VIP import",
         "identifier": "email"},
    )  # fmt: skip
    assert "There is already a segment “VIP import (sms upload)”" in text(taken)
    assert ChannelSegment.objects.filter(workspace=workspace, channel="sms").count() == 1


def test_an_upload_over_the_limit_is_refused_with_what_to_do(marketer_client, workspace, settings):
    settings.AUDIENCE_IMPORT_MAX_BYTES = 1024
    big = SimpleUploadedFile("big.csv", b"crm-0001\n" * 400)
    answer = marketer_client.post(
        "/channels/email/segments/upload/",
        {"file": big, "name": "Big", "identifier": "external_id"},
    )
    assert answer.status_code == 413
    assert "Split it into smaller files" in text(answer)
    assert not ChannelSegment.objects.filter(workspace=workspace).exists()


def test_the_segments_tab_costs_the_same_queries_for_many_entries(marketer_client, workspace):
    for i in range(3):
        entry_of(workspace, static(workspace, f"S{i}"))
    marketer_client.get("/channels/email/segments/")
    with CaptureQueriesContext(connection) as few:
        marketer_client.get("/channels/email/segments/")
    for i in range(3, 30):
        entry_of(workspace, static(workspace, f"S{i}"))
    with CaptureQueriesContext(connection) as many:
        page = marketer_client.get("/channels/email/segments/")
    assert page.content.decode().count('<tr id="entry-') == 30
    assert len(many) == len(few)


def test_the_audiences_tab_costs_the_same_queries_for_many_audiences(marketer_client, workspace):
    entries = [entry_of(workspace, static(workspace, f"S{i}")) for i in range(4)]
    for i in range(2):
        audience_of(workspace, f"A{i}", entries[:2], entries[2:])
    marketer_client.get("/channels/email/audiences/")
    with CaptureQueriesContext(connection) as few:
        marketer_client.get("/channels/email/audiences/")
    for i in range(2, 20):
        audience_of(workspace, f"A{i}", entries[:2], entries[2:])
    with CaptureQueriesContext(connection) as many:
        page = marketer_client.get("/channels/email/audiences/")
    assert page.content.decode().count("<tr data-audience=") == 20
    assert len(many) == len(few)


# --- the Klaviyo source and Sync now ---------------------------------------------------


def test_an_admin_sets_the_klaviyo_key_which_is_never_shown_and_a_marketer_syncs(
    member_client, workspace
):
    admin = member_client(Role.ADMIN)
    page = admin.get("/channels/email/source/")
    assert "Not connected" in text(page)
    missing = admin.post("/channels/email/source/", {"api_key": "", "schedule_minutes": ""})
    assert "Give the Klaviyo private API key (read access)." in text(missing)
    bad = admin.post("/channels/email/source/", {"api_key": "pk_x", "schedule_minutes": "5"})
    assert "Ensure this value is greater than or equal to 15." in text(bad)
    assert segment_source(workspace=workspace, channel="email") is None
    saved = admin.post(
        "/channels/email/source/",
        {"api_key": "pk_live_very_secret", "schedule_minutes": "60"},
        follow=True,
    )
    assert "Klaviyo source is saved" in text(saved)
    assert "pk_live_very_secret" not in saved.content.decode()
    assert "Key set" in text(saved) and "Syncs every 60 minutes" in text(saved)
    source = segment_source(workspace=workspace, channel="email")
    assert unseal(source.secrets) == {"api_key": "pk_live_very_secret"}
    # empty keeps the stored key
    admin.post("/channels/email/source/", {"api_key": "", "schedule_minutes": ""})
    source.refresh_from_db()
    assert unseal(source.secrets) == {"api_key": "pk_live_very_secret"}
    assert source.settings["schedule_minutes"] is None
    assert segment_source(workspace=workspace, channel="sms") is None  # channels apart

    marketer = member_client(Role.MARKETER)
    assert marketer.post("/channels/email/source/", {"api_key": "pk_other"}).status_code == 403
    started = marketer.post("/channels/email/sync/")
    job = ChannelSync.objects.get(workspace=workspace, channel="email")
    assert started["Location"] == f"/channels/email/syncs/{job.pk}/"
    sync_page = marketer.get(started["Location"])
    assert 'hx-trigger="every 2s"' in sync_page.content.decode()
    assert "Waiting for a worker" in text(sync_page)
    polled = marketer.get(started["Location"], HTTP_HX_TARGET="job-status", **HTMX)
    assert polled.content.decode().lstrip().startswith('<div id="job-status"')
    again = marketer.post("/channels/email/sync/", follow=True)
    assert "A sync of this channel is already under way" in text(again)
    listed = marketer.get("/channels/email/segments/")
    assert f'href="/channels/email/syncs/{job.pk}/"' in listed.content.decode()
    ChannelSync.objects.filter(pk=job.pk).update(status="done", groups=3, detail="Synced.")
    done = marketer.get(started["Location"])
    assert (
        "every 2s" not in done.content.decode()
        and 'data-count="groups">3<' in done.content.decode()
    )
    assert marketer.get(f"/channels/sms/syncs/{job.pk}/").status_code == 404


def test_sync_now_without_a_source_says_what_to_do(marketer_client):
    answer = marketer_client.post("/channels/sms/sync/", follow=True)
    assert "The sms channel has no segment source: set its Klaviyo key first." in text(answer)


# --- the Audiences tab -----------------------------------------------------------------


def test_an_audience_is_made_with_its_errors_at_the_fields_and_counted_live(
    marketer_client, workspace, people
):
    ann, bob, cy, dee = people
    buyers = entry_of(workspace, static(workspace, "Buyers", [ann, bob, cy]))
    newsletter = entry_of(workspace, static(workspace, "Newsletter", [dee]))
    churned = entry_of(workspace, static(workspace, "Churned", [bob]))
    off = entry_of(workspace, static(workspace, "Old list", [ann]), active=False)
    sms_only = entry_of(workspace, static(workspace, "Texters", [cy]), "sms")
    dnc_add(workspace=workspace, channel="email", address="dee@example.com", actor=ACTOR)

    form = marketer_client.get("/channels/email/audiences/new/")
    body = text(form)
    assert "Buyers" in body and "Churned" in body
    assert "Old list" not in body and "Texters" not in body  # inactive, another channel's

    both = marketer_client.post(
        "/channels/email/audiences/new/",
        {"name": "Spring sale", "estimated_volume": "5000", "include": [buyers.pk],
         "exclude": [buyers.pk]},
    )  # fmt: skip
    assert both.status_code == 200
    exclude_box = re.search(r'id="picker-exclude".*?</fieldset>', both.content.decode(), re.S)[0]
    assert "“Buyers” is both included and excluded: it would count nobody." in exclude_box
    assert f'value="{buyers.pk}" id="id_include_{buyers.pk}" checked' in both.content.decode()
    unnamed = marketer_client.post(
        "/channels/email/audiences/new/", {"name": "", "estimated_volume": "-3"}
    )
    assert "This field is required." in text(unnamed)
    assert "Ensure this value is greater than or equal to 0." in text(unnamed)
    for stray in (off.pk, sms_only.pk):
        wrong = marketer_client.post(
            "/channels/email/audiences/new/", {"name": "Odd", "include": [stray]}
        )
        assert "is not an active segment of this channel" in text(wrong)
    assert not ChannelAudience.objects.filter(workspace=workspace).exists()

    created = marketer_client.post(
        "/channels/email/audiences/new/",
        {"name": "Spring sale", "estimated_volume": "5000",
         "include": [buyers.pk, newsletter.pk], "exclude": [churned.pk]},
    )  # fmt: skip
    audience = ChannelAudience.objects.get(workspace=workspace, channel="email")
    assert created["Location"] == f"/channels/email/audiences/{audience.pk}/"
    detail = marketer_client.get(created["Location"])
    body = detail.content.decode()
    # ann, cy, dee are in (bob is excluded); reachable by email: ann (cy no email, dee DNC)
    assert 'data-count="people">3<' in body and 'data-count="reachable">1<' in body
    assert 'data-count="estimate">5,000<' in body
    assert "People in “Buyers” or “Newsletter”, and not in “Churned”." in text(detail)

    listed = marketer_client.get("/channels/email/audiences/")
    row = re.search(r'<tr data-audience="Spring sale">.*?</tr>', listed.content.decode(), re.S)[0]
    assert f'hx-get="/channels/email/audiences/{audience.pk}/count/"' in row
    assert "People in “Buyers” or “Newsletter”, and not in “Churned”." in row
    count = marketer_client.get(f"/channels/email/audiences/{audience.pk}/count/", **HTMX)
    assert "data-people>3<" in count.content.decode() and "1 reachable" in text(count)
    # live: a new buyer counts at once
    static_members_change(
        segment=buyers.segment,
        people=Person.objects.filter(pk=PersonFactory(workspace=workspace, email="e@x.io").pk),
        add=True,
        actor=ACTOR,
    )
    count = marketer_client.get(f"/channels/email/audiences/{audience.pk}/count/", **HTMX)
    assert "data-people>4<" in count.content.decode() and "2 reachable" in text(count)
    assert "Spring sale" not in text(marketer_client.get("/channels/sms/audiences/"))


def test_an_audience_is_edited_keeping_an_entry_made_inactive_since(
    marketer_client, workspace, people
):
    buyers = entry_of(workspace, static(workspace, "Buyers", people))
    churned = entry_of(workspace, static(workspace, "Churned", people[:1]))
    audience = audience_of(workspace, "Spring sale", [buyers], [churned])
    list_services.channel_segment_update(entry=churned, changes={"active": False}, actor=ACTOR)
    url = f"/channels/email/audiences/{audience.pk}/edit/"
    form = marketer_client.get(url).content.decode()
    assert f'value="{churned.pk}" id="id_exclude_{churned.pk}" checked' in form
    assert "inactive" in form
    saved = marketer_client.post(
        url, {"name": "Spring sale 2", "estimated_volume": "", "include": [buyers.pk],
              "exclude": [churned.pk]},
    )  # fmt: skip
    assert saved.status_code == 302
    audience.refresh_from_db()
    assert audience.name == "Spring sale 2" and audience.estimated_volume is None
    assert list(audience.exclude.all()) == [churned]


def test_an_audience_is_cloned_to_vary(marketer_client, workspace, people):
    buyers = entry_of(workspace, static(workspace, "Buyers", people))
    churned = entry_of(workspace, static(workspace, "Churned", people[:1]))
    audience = audience_of(workspace, "Spring sale", [buyers], [churned], estimated_volume=900)
    url = f"/channels/email/audiences/{audience.pk}/clone/"
    taken = marketer_client.post(url, {"name": "spring SALE"})
    assert taken.status_code == 200
    assert "There is already a email audience “spring SALE”." in text(taken)
    copied = marketer_client.post(url, {"name": "Spring sale B"})
    copy = ChannelAudience.objects.get(workspace=workspace, name="Spring sale B")
    assert copied["Location"] == f"/channels/email/audiences/{copy.pk}/edit/"
    assert (list(copy.include.all()), list(copy.exclude.all())) == ([buyers], [churned])
    assert copy.estimated_volume == 900


def test_an_audience_is_deleted_and_a_refusal_is_shown(
    marketer_client, workspace, people, monkeypatch
):
    buyers = entry_of(workspace, static(workspace, "Buyers", people))
    audience = audience_of(workspace, "Spring sale", [buyers])
    url = f"/channels/email/audiences/{audience.pk}/"
    detail = marketer_client.get(url).content.decode()
    assert 'data-confirm="Delete the audience “Spring sale”?' in detail

    def used(*, audience, actor):
        raise list_services.ListConflict(
            "“Spring sale” is used by “Easter newsletter”: choose another audience there first."
        )

    monkeypatch.setattr(list_services, "channel_audience_delete", used)
    refused = marketer_client.post(f"{url}delete/", follow=True)
    assert "is used by “Easter newsletter”: choose another audience there first." in text(refused)
    assert ChannelAudience.objects.filter(pk=audience.pk).exists()
    monkeypatch.undo()

    deleted = marketer_client.post(f"{url}delete/", follow=True)
    assert "Audience “Spring sale” deleted." in text(deleted)
    assert not ChannelAudience.objects.filter(pk=audience.pk).exists()
    assert ChannelSegment.objects.filter(pk=buyers.pk).exists()


def test_a_meta_audience_takes_its_custom_audience_id_and_is_exported(
    marketer_client, workspace, people
):
    seed = entry_of(workspace, static(workspace, "Buyers", people), "meta")
    audience = audience_of(workspace, "Lookalike seed", [seed], channel="meta")
    url = f"/channels/meta/audiences/{audience.pk}/"
    detail = marketer_client.get(url)
    assert "No Meta ad account is connected" in text(detail)
    bad = marketer_client.post(f"{url}meta/", {"meta_audience_id": "abc", "action": "save"})
    assert "A Meta custom audience id is a number." in text(bad)
    no_account = marketer_client.post(
        f"{url}meta/", {"meta_audience_id": "238500123", "action": "add"}, follow=True
    )
    assert "Connect the Meta ad account first" in text(no_account)
    audience.refresh_from_db()
    assert audience.meta_audience_id == "238500123"  # saved all the same

    provider_set(
        workspace=workspace, channel="meta", kind="meta", settings={"ad_account_id": "123"},
        secrets={"access_token": "token"}, actor=ACTOR,
    )  # fmt: skip
    started = marketer_client.post(
        f"{url}meta/", {"meta_audience_id": "238500123", "action": "replace"}
    )
    job = MetaExport.objects.get(workspace=workspace, audience=audience)
    assert job.replace is True
    assert started["Location"] == f"/channels/meta/exports/{job.pk}/"
    page = marketer_client.get(started["Location"])
    assert 'hx-trigger="every 2s"' in page.content.decode() and "Lookalike seed" in text(page)
    assert f'href="/channels/meta/exports/{job.pk}/"' in marketer_client.get(url).content.decode()

    # an audience of another channel has no Meta part
    email = audience_of(workspace, "Email one", [entry_of(workspace, static(workspace, "E"))])
    assert "Meta custom audience" not in text(
        marketer_client.get(f"/channels/email/audiences/{email.pk}/")
    )
    refused = marketer_client.post(
        f"/channels/email/audiences/{email.pk}/meta/",
        {"meta_audience_id": "1", "action": "add"},
        follow=True,
    )
    assert "Only audiences of the Meta channel are exported to Meta." in text(refused)


# --- roles and tenancy -----------------------------------------------------------------


def test_a_viewer_reads_both_tabs_without_write_buttons_and_cannot_write(
    member_client, workspace, people
):
    buyers = entry_of(workspace, static(workspace, "Buyers", people))
    audience = audience_of(workspace, "Spring sale", [buyers])
    viewer = member_client(Role.VIEWER)
    segments = viewer.get("/channels/email/segments/")
    assert segments.status_code == 200 and "Buyers" in text(segments)
    html = segments.content.decode()
    assert "Add a Herald segment" not in html and "Upload a CSV" not in html
    assert 'role="switch"' not in html and "/delete/" not in html and "Sync now" not in html
    audiences = viewer.get("/channels/email/audiences/")
    assert "Spring sale" in text(audiences) and "New audience" not in text(audiences)
    detail = viewer.get(f"/channels/email/audiences/{audience.pk}/")
    assert (
        detail.status_code == 200
        and "Clone" not in text(detail)
        and "/edit/" not in (detail.content.decode())
    )
    for url, data in (
        ("/channels/email/segments/add/", {"segment": buyers.segment_id}),
        (f"/channels/email/segments/{buyers.pk}/active/", {"active": "0"}),
        (f"/channels/email/segments/{buyers.pk}/delete/", {}),
        (f"/channels/email/segments/{buyers.pk}/", {"name": "X"}),
        ("/channels/email/segments/upload/", {}),
        ("/channels/email/sync/", {}),
        ("/channels/email/source/", {"api_key": "k"}),
        ("/channels/email/audiences/new/", {"name": "X", "include": [buyers.pk]}),
        (f"/channels/email/audiences/{audience.pk}/clone/", {"name": "X"}),
        (f"/channels/email/audiences/{audience.pk}/delete/", {}),
    ):
        assert viewer.post(url, data).status_code == 403, url
    assert viewer.get("/channels/email/audiences/new/").status_code == 403
    buyers.refresh_from_db()
    assert buyers.active and ChannelAudience.objects.filter(workspace=workspace).count() == 1


def test_another_workspaces_audience_is_not_found(marketer_client, other_workspace):
    theirs = audience_of(
        other_workspace, "Theirs", [entry_of(other_workspace, static(other_workspace, "T"))]
    )
    for suffix in ("", "count/", "edit/"):
        url = f"/channels/email/audiences/{theirs.pk}/{suffix}"
        assert marketer_client.get(url).status_code == 404, url
    for suffix in ("clone/", "delete/", "edit/"):
        url = f"/channels/email/audiences/{theirs.pk}/{suffix}"
        assert marketer_client.post(url, {"name": "Mine"}).status_code == 404, url
    assert ChannelAudience.objects.filter(pk=theirs.pk, name="Theirs").exists()
    export = MetaExport.objects.create(
        workspace=other_workspace,
        audience=audience_of(other_workspace, "M", [], channel="meta"),
    )
    assert marketer_client.get(f"/channels/meta/exports/{export.pk}/").status_code == 404


def test_the_channels_page_leads_to_each_channels_tabs(marketer_client):
    page = marketer_client.get("/channels/").content.decode()
    for channel in ("email", "sms", "push", "meta"):
        assert f'href="/channels/{channel}/segments/"' in page, channel
        assert f'href="/channels/{channel}/audiences/"' in page, channel
