"""The audit log: one entry per write with its actor, by every API operation and the UI's
write pages; append-only; never a personal value; the Settings -> Audit log page."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, transaction

from accounts.audit import Actor, audit_record
from accounts.models import ApiKey, AuditEntry, Membership, Role
from accounts.services import api_key_create
from audiences.models import TargetAudience
from audiences.services import audience_create
from campaigns.models import Campaign
from config.api_urls import api
from people.models import DoNotContact, Person, Tag
from people.services.dnc import dnc_add
from people.services.people import person_upsert
from people.services.tags import tag_create
from segments.models import Segment
from segments.services import segment_create
from tests.factories import UserFactory

SECRET_EMAIL = "ada.lovelace.secret@example.test"
SECRET_NAME = "Augusta-Secret"
SYSTEM = Actor(system="tests")


def entries(workspace):
    return list(AuditEntry.objects.for_workspace(workspace).order_by("id"))


@pytest.fixture
def data(workspace):
    """Objects the write operations act on."""
    person_upsert(
        workspace=workspace,
        external_id="p1",
        data={"email": SECRET_EMAIL, "first_name": SECRET_NAME, "city": "London"},
        actor=SYSTEM,
    )
    person_upsert(workspace=workspace, external_id="p2", data={"city": "Paris"}, actor=SYSTEM)
    tag_create(workspace=workspace, name="Old tag", actor=SYSTEM)
    tag_create(workspace=workspace, name="VIP", actor=SYSTEM)
    audience_create(workspace=workspace, name="Doomed", actor=SYSTEM)
    audience_create(workspace=workspace, name="Keep", actor=SYSTEM)
    dnc_add(workspace=workspace, channel="email", address="gone@example.test", actor=SYSTEM)
    rules = {"attribute": "city", "op": "is", "value": "London"}
    segment_create(workspace=workspace, name="Snap", kind="snapshot", rules=rules, actor=SYSTEM)
    segment_create(
        workspace=workspace, name="Doomed seg", kind="snapshot", rules=rules, actor=SYSTEM
    )
    segment_create(workspace=workspace, name="Static", kind="static", actor=SYSTEM)
    segment_create(workspace=workspace, name="Query", kind="query", rules=rules,
                   refresh_every_minutes=60, actor=SYSTEM)  # fmt: skip
    _channel_lists(workspace)
    _campaigns(workspace)
    return {
        "audience": lambda name: TargetAudience.objects.for_workspace(workspace).get(name=name).pk,
        "segment": lambda name: Segment.objects.for_workspace(workspace).get(name=name).pk,
        "entry": lambda name: _entry(workspace, name),
        "channel_audience": lambda name: _channel_audience(workspace, name),
        "campaign": lambda name: Campaign.objects.for_workspace(workspace).get(name=name).pk,
        "flow": lambda name: _flow_id(workspace, name),
    }


CAMPAIGN_EMAIL = {"subject": "Hello", "text": "Hello there"}


def _flow_id(workspace, name):
    from campaigns.models import Flow

    return Flow.objects.for_workspace(workspace).get(name=name).pk


def _campaigns(workspace):
    from campaigns.services import campaign_create, campaign_launch, campaign_update

    snap = Segment.objects.for_workspace(workspace).get(name="Snap")
    banner = campaign_create(workspace=workspace, name="Camp banner", channel="banner",
                             content={"placement": "top", "title": "Hi"}, everyone=True,
                             actor=SYSTEM)  # fmt: skip
    campaign_launch(campaign=banner, actor=SYSTEM)
    for name in ("Camp keep", "Camp doomed", "Camp ab"):
        campaign = campaign_create(workspace=workspace, name=name, channel="email",
                                   content=CAMPAIGN_EMAIL, include=[snap],
                                   actor=SYSTEM)  # fmt: skip
    from campaigns.flows.services import flow_create

    flow_create(workspace=workspace, name="Flow keep", actor=SYSTEM, entry={"type": "manual"},
                steps=[{"id": "tag", "type": "add_tag", "tag": "Flowed"}])  # fmt: skip
    campaign_update(campaign=campaign, actor=SYSTEM, variants=[{"percent": 50}, {"percent": 50}],
                    ab_test={"percent": 20, "metric": "open", "decide_after_hours": 4})  # fmt: skip


def _channel_lists(workspace):
    """A channel's entries and audiences (email), and a Meta audience with its account."""
    from channels import list_services
    from channels.services import provider_set

    for name in ("Chan keep", "Chan doomed", "Chan new", "Chan meta"):
        segment_create(workspace=workspace, name=name, kind="static", actor=SYSTEM)
    segments = {s.name: s for s in Segment.objects.for_workspace(workspace)}
    keep = list_services.channel_segment_add(
        workspace=workspace, channel="email", segment=segments["Chan keep"], actor=SYSTEM
    )
    list_services.channel_segment_add(
        workspace=workspace, channel="email", segment=segments["Chan doomed"], actor=SYSTEM
    )
    for name in ("Aud keep", "Aud doomed"):
        list_services.channel_audience_create(
            workspace=workspace, channel="email", data={"name": name, "include": [keep.pk]},
            actor=SYSTEM,
        )  # fmt: skip
    meta_entry = list_services.channel_segment_add(
        workspace=workspace, channel="meta", segment=segments["Chan meta"], actor=SYSTEM
    )
    meta = list_services.channel_audience_create(
        workspace=workspace, channel="meta", data={"name": "Aud meta", "include": [meta_entry.pk]},
        actor=SYSTEM,
    )  # fmt: skip
    list_services.channel_audience_set_meta_id(audience=meta, meta_audience_id="2385", actor=SYSTEM)
    provider_set(workspace=workspace, channel="meta", kind="meta",
                 settings={"ad_account_id": "123"}, secrets={"access_token": "t"},
                 actor=SYSTEM)  # fmt: skip


def _entry(workspace, name):
    from channels.models import ChannelSegment

    return ChannelSegment.objects.for_workspace(workspace).get(name=name).pk


def _channel_audience(workspace, name):
    from channels.models import ChannelAudience

    return ChannelAudience.objects.for_workspace(workspace).get(name=name).pk


# method, path (filled from `data`), body (json, or ("multipart", dict)), expected action
# (None: a read that writes nothing).
def api_calls(ids):
    return [
        ("POST", "/api/v1/people/batch",
         {"people": [{"external_id": "n1", "email": SECRET_EMAIL}, {"external_id": "p2",
                      "attributes": {"plan": "pro"}}]}, "person.upsert_batch"),
        ("PUT", "/api/v1/people/n2", {"first_name": SECRET_NAME}, "person.upsert"),
        ("POST", "/api/v1/events", {"events": [{"person": "p1", "name": "Login"}]},
         "event.ingest_batch"),
        ("POST", "/api/v1/tags", {"name": "Fresh"}, "tag.create"),
        ("DELETE", "/api/v1/tags/Old%20tag", None, "tag.delete"),
        ("POST", "/api/v1/tags/VIP/people", {"people": ["p1", "p2"]}, "tag.assign"),
        ("DELETE", "/api/v1/tags/VIP/people", {"people": ["p1"]}, "tag.unassign"),
        ("POST", "/api/v1/dnc", {"channel": "email", "address": SECRET_EMAIL}, "dnc.add"),
        ("DELETE", "/api/v1/dnc/email/gone@example.test", None, "dnc.remove"),
        ("POST", "/api/v1/audiences/imports",
         ("multipart", {"file": SimpleUploadedFile("a.csv", b"p1\np2\n"), "mode": "single",
                        "audience": "Imported"}), "audience_import.start"),
        ("POST", "/api/v1/audiences", {"name": "Brand new"}, "audience.create"),
        ("DELETE", f"/api/v1/audiences/{ids['audience']('Doomed')}", None, "audience.delete"),
        ("POST", f"/api/v1/audiences/{ids['audience']('Keep')}/members", {"people": ["p1", "p2"]},
         "audience.add_people"),
        ("DELETE", f"/api/v1/audiences/{ids['audience']('Keep')}/members", {"people": ["p2"]},
         "audience.remove_people"),
        ("POST", "/api/v1/segments", {"name": "New seg", "kind": "snapshot",
         "rules": {"attribute": "city", "op": "is", "value": "Paris"}}, "segment.create"),
        ("POST", "/api/v1/segments/preview",
         {"rules": {"attribute": "city", "op": "is", "value": "Paris"}}, None),
        ("PATCH", f"/api/v1/segments/{ids['segment']('Snap')}", {"name": "Snap 2"},
         "segment.update"),
        ("DELETE", f"/api/v1/segments/{ids['segment']('Doomed seg')}", None, "segment.delete"),
        ("POST", f"/api/v1/segments/{ids['segment']('Static')}/members", {"people": ["p1", "p2"]},
         "segment.add_people"),
        ("DELETE", f"/api/v1/segments/{ids['segment']('Static')}/members", {"people": ["p2"]},
         "segment.remove_people"),
        ("POST", f"/api/v1/segments/{ids['segment']('Snap')}/to-audience",
         {"audience": "From seg", "action": "add"}, "segment.to_audience"),
        ("PUT", "/api/v1/channels/email/provider", {"kind": "sandbox"}, "provider.set"),
        ("PUT", "/api/v1/channels/push/provider/ios", {"kind": "sandbox"}, "provider.set"),
        ("POST", "/api/v1/channels/email/provider/test", {"to": SECRET_EMAIL}, "provider.test"),
        ("POST", "/api/v1/channels/email/segments", {"segment": ids["segment"]("Chan new")},
         "channel_segment.add"),
        ("POST", "/api/v1/channels/email/segments/upload",
         ("multipart", {"file": SimpleUploadedFile("c.csv", b"p1\n"), "name": "Uploaded"}),
         ["audience_import.start", "segment.create", "channel_segment.upload"]),
        ("PATCH", f"/api/v1/channels/email/segments/{ids['entry']('Chan keep')}",
         {"external_id": "KL-1"}, "channel_segment.update"),
        ("DELETE", f"/api/v1/channels/email/segments/{ids['entry']('Chan doomed')}", None,
         "channel_segment.delete"),
        ("PUT", "/api/v1/channels/email/source",
         {"kind": "klaviyo", "secrets": {"api_key": "pk_secret"}}, "segment_source.set"),
        ("POST", "/api/v1/channels/email/sync", None, "channel_sync.start"),
        ("POST", "/api/v1/channels/email/audiences",
         {"name": "Aud new", "include": [ids["entry"]("Chan keep")]}, "channel_audience.create"),
        ("PATCH", f"/api/v1/channels/email/audiences/{ids['channel_audience']('Aud keep')}",
         {"estimated_volume": 10}, "channel_audience.update"),
        ("POST", f"/api/v1/channels/email/audiences/{ids['channel_audience']('Aud keep')}/clone",
         {"name": "Aud copy"}, "channel_audience.clone"),
        ("DELETE", f"/api/v1/channels/email/audiences/{ids['channel_audience']('Aud doomed')}",
         None, "channel_audience.delete"),
        ("POST", f"/api/v1/channels/meta/audiences/{ids['channel_audience']('Aud meta')}/export",
         {"replace": False}, "meta_export.start"),
        ("POST", "/api/v1/campaigns", {"name": "Camp new", "channel": "email",
                                        "content": CAMPAIGN_EMAIL}, "campaign.create"),
        ("PATCH", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}", {"name": "Camp kept"},
         "campaign.update"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}/test", {"people": ["p1"]},
         "campaign.test"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}/launch", {},
         ["campaign.sending", "campaign.launch"]),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}/pause", None,
         "campaign.paused"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}/resume", None,
         "campaign.sending"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp keep')}/cancel", None,
         "campaign.cancelled"),
        ("DELETE", f"/api/v1/campaigns/{ids['campaign']('Camp doomed')}", None,
         "campaign.delete"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp ab')}/launch", {},
         ["campaign.sending", "campaign.launch"]),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp ab')}/winner", {"variant": "B"},
         "campaign.winner"),
        ("POST", f"/api/v1/campaigns/{ids['campaign']('Camp banner')}/end", None,
         "campaign.ended"),
        ("POST", "/api/v1/flows", {"name": "Flow new", "entry": {"type": "manual"},
                                   "steps": [{"id": "x", "type": "exit"}]}, "flow.create"),
        ("PATCH", f"/api/v1/flows/{ids['flow']('Flow keep')}", {"reentry": "always"},
         "flow.update"),
        ("POST", f"/api/v1/flows/{ids['flow']('Flow keep')}/publish", None, "flow.publish"),
        ("POST", f"/api/v1/flows/{ids['flow']('Flow keep')}/people", {"people": ["p1"]},
         "flow.add_people"),
        ("POST", f"/api/v1/flows/{ids['flow']('Flow keep')}/pause", None, "flow.paused"),
        ("POST", f"/api/v1/flows/{ids['flow']('Flow keep')}/resume", None, "flow.live"),
        ("POST", f"/api/v1/flows/{ids['flow']('Flow keep')}/archive", None, "flow.archived"),
        ("PUT", "/api/v1/banners/settings", {"allowed_origins": ["https://shop.example.com"]},
         "workspace.update"),
        ("DELETE", "/api/v1/people/p2", None, "person.erase"),
    ]  # fmt: skip


def _template(path):
    """/api/v1/audiences/12/members -> /api/v1/audiences/{}/members, to match openapi."""
    parts = path.split("/")
    return "/".join("{}" if p.isdigit() or p in ("n2", "p2", "Old%20tag", "VIP", "email",
                    "gone@example.test", "ios") else p for p in parts)  # fmt: skip


def test_every_api_write_operation_is_walked(workspace, data):
    schema = api.get_openapi_schema()
    operations = {
        (method.upper(), "/".join("{}" if p.startswith("{") else p for p in path.split("/")))
        for path, ops in schema["paths"].items()
        for method in ops
        if method != "get"
    }
    walked = {(m, _template(p)) for m, p, _b, _a in api_calls(data)}
    assert operations == walked


def test_each_api_write_records_one_entry_by_its_key(api_client, workspace, data):
    key = ApiKey.objects.for_workspace(workspace).get()
    for method, path, body, action in api_calls(data):
        before = {e.pk for e in entries(workspace)}
        if isinstance(body, tuple):
            r = api_client.post(path, body[1])
        else:
            r = api_client.generic(
                method, path, json.dumps(body) if body is not None else "",
                content_type="application/json",
            )  # fmt: skip
        assert r.status_code < 300, (method, path, r.status_code, r.content)
        new = [e for e in entries(workspace) if e.pk not in before]
        if action is None:
            assert new == [], (method, path)
            continue
        expected = action if isinstance(action, list) else [action]
        assert sorted(e.action for e in new) == sorted(expected), (method, path)
        assert new[0].actor_api_key_id == key.pk and new[0].actor_user_id is None
        assert new[0].ip == "127.0.0.1"
    _assert_no_personal_values(workspace)


def _assert_no_personal_values(workspace):
    dumped = json.dumps([e.summary for e in entries(workspace)])
    for secret in (SECRET_EMAIL, SECRET_NAME, "gone@example.test", "London", "pro"):
        assert secret.lower() not in dumped.lower(), secret


# UI: the POST pages, with a valid form; (url, data, expected actions).
def ui_calls(workspace, ids):
    person = Person.objects.for_workspace(workspace).get(external_id="p1").pk
    tag = Tag.objects.for_workspace(workspace).get(name="VIP").pk
    old_tag = Tag.objects.for_workspace(workspace).get(name="Old tag").pk
    dnc = DoNotContact.objects.for_workspace(workspace).get().pk
    other = UserFactory(email="member@acme.test")
    other.set_unusable_password()  # invited, not signed up yet: the invitation can be resent
    other.save()
    member = Membership.objects.create(workspace=workspace, user=other, role=Role.VIEWER).pk
    key, _raw = api_key_create(workspace=workspace, name="Old", actor=SYSTEM)
    return [
        ("/settings/", {"name": "Acme 2", "time_zone": "Europe/Paris"}, ["workspace.update"]),
        ("/settings/members/", {"email": SECRET_EMAIL, "role": "viewer"}, ["member.invite"]),
        (f"/settings/members/{member}/role/", {"role": "ops"}, ["member.change_role"]),
        (f"/settings/members/{member}/resend/", {}, ["member.invite_resend"]),
        (f"/settings/members/{member}/remove/", {}, ["member.remove"]),
        ("/settings/api-keys/", {"name": "CRM", "kind": "full"}, ["api_key.create"]),
        (f"/settings/api-keys/{key.pk}/revoke/", {}, ["api_key.revoke"]),
        ("/tags/", {"name": "UI tag"}, ["tag.create"]),
        (f"/tags/{old_tag}/delete/", {}, ["tag.delete"]),
        (f"/people/{person}/tags/", {"name": "VIP"}, ["tag.assign"]),
        (f"/people/{person}/tags/{tag}/remove/", {}, ["tag.unassign"]),
        ("/people/bulk/tags/", {"tag": "Bulk new", "action": "add", "all_matching": "1"},
         ["tag.assign"]),
        (f"/people/{person}/dnc/", {"channel": "email"}, ["dnc.add"]),
        ("/dnc/", {"channel": "email", "address": "other@example.test"}, ["dnc.add"]),
        ("/dnc/import/", {"channel": "email", "file": SimpleUploadedFile(
            "dnc.csv", b"x1@example.test\nx2@example.test\n")}, ["dnc.import"]),
        (f"/dnc/{dnc}/remove/", {}, ["dnc.remove"]),
        ("/people/attributes/", {"key": "plan", "type": "string", "label": "Plan"},
         ["attribute.declare"]),
        ("/audiences/", {"name": "UI audience"}, ["audience.create"]),
        (f"/audiences/{ids['audience']('Keep')}/rename/", {"name": "Kept"}, ["audience.rename"]),
        ("/people/bulk/audience/", {"audience": "Kept", "action": "add", "all_matching": "1"},
         ["audience.add_people"]),
        (f"/audiences/{ids['audience']('Doomed')}/delete/", {}, ["audience.delete"]),
        (f"/segments/{ids['segment']('Query')}/refresh/", {}, ["segment.refresh_request"]),
        (f"/segments/{ids['segment']('Snap')}/to-audience/", {"audience": "Seg aud",
         "action": "add"}, ["segment.to_audience"]),
        ("/people/bulk/segment/", {"segment": "Static", "action": "add", "all_matching": "1"},
         ["segment.add_people"]),
        ("/people/bulk/segment/", {"segment": "Hand-picked", "action": "add",
         "all_matching": "1"}, ["segment.create", "segment.add_people"]),
        ("/people/import/", {"file": SimpleUploadedFile("c.csv", b"external_id\nz1\n")},
         ["contact_import.create"]),
        ("/audiences/import/", {"file": SimpleUploadedFile("a.csv", b"p1\n"), "mode": "single",
         "identifier": "external_id", "new_audience": "Up", "action": "add", "run": "import"},
         ["audience_import.start"]),
        (f"/segments/{ids['segment']('Doomed seg')}/delete/", {}, ["segment.delete"]),
    ]  # fmt: skip


def test_each_ui_write_records_its_entries_by_the_user_with_the_ip(client, workspace, owner, data):
    client.force_login(owner)
    for url, body, actions in ui_calls(workspace, data):
        before = {e.pk for e in entries(workspace)}
        r = client.post(url, body)
        assert r.status_code in (200, 302), (url, r.status_code)
        new = [e for e in entries(workspace) if e.pk not in before]
        assert [e.action for e in new] == actions, (url, r.content[:300])
        assert all(e.actor_user_id == owner.pk and e.ip == "127.0.0.1" for e in new), url
    _assert_no_personal_values(workspace)


def test_the_log_refuses_update_and_delete(workspace):
    entry = audit_record(workspace=workspace, actor=SYSTEM, action="test.thing")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.thing"


def test_deleting_a_workspace_keeps_its_entries(workspace):
    entry = audit_record(workspace=workspace, actor=SYSTEM, action="test.thing")
    workspace_id = workspace.pk
    workspace.delete()
    assert AuditEntry.objects.unscoped().filter(pk=entry.pk, workspace_id=workspace_id).exists()


def test_an_actor_is_someone():
    with pytest.raises(ValueError):
        Actor()
    with pytest.raises(TypeError):
        audit_record(workspace=1, actor="someone", action="x")  # type: ignore[arg-type]


def test_the_audit_page_lists_filters_and_pages_newest_first(client, workspace, owner):
    for n in range(55):
        audit_record(workspace=workspace, actor=SYSTEM, action=f"test.a{n % 2}")
    audit_record(workspace=workspace, actor=Actor(user=owner), action="test.mine")
    client.force_login(owner)
    page = client.get("/settings/audit/")
    assert page.status_code == 200
    html = page.content.decode().split('id="audit-log"')[1]
    assert html.index("test.mine") < html.index("test.a0")
    assert "after=" in html and "before=" not in html
    newest = AuditEntry.objects.for_workspace(workspace).order_by("-created_at", "-id")
    last_of_first = list(newest[:50])[-1]
    older = client.get(f"/settings/audit/?after={last_of_first.pk}").content.decode()
    assert older.count("<tr>") - 1 == 6 and "before=" in older
    mine = client.get(f"/settings/audit/?actor=user:{owner.pk}")
    assert mine.context["form"].errors == {}
    mine = mine.content.decode().split('id="audit-log"')[1]
    assert "test.mine" in mine and "test.a0" not in mine
    only = client.get("/settings/audit/?action=test.a1").content.decode()
    only = only.split('id="audit-log"')[1]
    assert "test.a1" in only and "test.a0" not in only and "test.mine" not in only
    future = client.get("/settings/audit/?date_from=2999-01-01").content.decode()
    assert "No entries" in future


def test_the_audit_page_is_for_admins_and_owners(workspace, member_client):
    assert member_client(Role.MARKETER).get("/settings/audit/").status_code == 403
    assert member_client(Role.ADMIN).get("/settings/audit/").status_code == 200


def test_the_audit_page_shows_only_the_workspaces_entries(
    client, workspace, other_workspace, owner
):
    audit_record(workspace=other_workspace, actor=SYSTEM, action="test.theirs")
    client.force_login(owner)
    assert "test.theirs" not in client.get("/settings/audit/").content.decode()


def test_a_finished_import_job_is_one_entry_by_its_worker(workspace, ops_user):
    from audiences.import_services import audience_import_run, audience_import_start

    job = audience_import_start(
        workspace=workspace, uploaded_by=ops_user, actor=Actor(user=ops_user),
        file=SimpleUploadedFile("a.csv", b"p1\n"), mode="single", audience_name="Imp",
        identifier="external_id",
    )  # fmt: skip
    person_upsert(workspace=workspace, external_id="p1", data={}, actor=SYSTEM)
    audience_import_run(import_id=job.pk)
    done = AuditEntry.objects.for_workspace(workspace).get(action="audience_import.done")
    assert done.object_id == job.pk and done.actor_user_id == ops_user.pk
    assert done.actor_system == "audience_import worker"
    assert done.summary["matched"] == 1


def test_admin_edits_deletes_and_imports_are_audited_by_the_staff_user(client, workspace):
    from tests.accounts.test_admin_security import (
        ALL,
        _change_form_data,
        _import,
        _model_perms,
        _staff,
    )

    tag = tag_create(workspace=workspace, name="Old", actor=SYSTEM)
    staff = _staff(workspace, perms=_model_perms("people.tag", *ALL))
    client.force_login(staff)
    page = client.get(f"/admin/people/tag/{tag.pk}/change/")
    data = _change_form_data(page) | {"name": "Renamed"}
    assert client.post(f"/admin/people/tag/{tag.pk}/change/", data).status_code == 302
    rows = f"workspace,name\n{workspace.id},A\n{workspace.id},B\n"
    assert _import(client, "/admin/people/tag/", rows).status_code == 302
    doomed = list(Tag.objects.for_workspace(workspace).filter(name__in=["A", "B"]))
    assert len(doomed) == 2
    response = client.post(
        "/admin/people/tag/",
        {"action": "delete_selected", "_selected_action": [t.pk for t in doomed], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Tag.objects.filter(pk__in=[t.pk for t in doomed]).exists()
    got = [
        (e.action, e.object_id, e.summary)
        for e in entries(workspace)
        if e.action.startswith("admin.")
    ]
    assert got == [
        ("admin.tag.change", tag.pk, {"fields": ["name"]}),
        ("admin.tag.import", None, {"new": 2}),
        ("admin.tag.delete_many", None, {"rows": 2}),
    ]
    assert all(
        e.actor_user_id == staff.pk and e.ip == "127.0.0.1"
        for e in entries(workspace)
        if e.action.startswith("admin.")
    )
