"""Workspaces: switching, creating, settings, members and API keys in the UI."""

import re

import pytest
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import ApiKey, Membership, Role, Workspace
from segments.models import Segment
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory


def test_switching_workspace_changes_what_the_pages_show(client, owner, workspace):
    second = WorkspaceFactory(name="Second Shop", slug="second-shop")
    MembershipFactory(workspace=second, user=owner, role=Role.VIEWER)
    client.force_login(owner)
    assert "Acme" in client.get("/").text
    response = client.post("/workspaces/switch/", {"workspace": "second-shop"}, follow=True)
    assert "You are now working in Second Shop" in response.text
    assert "<h1>Second Shop</h1>" in response.text
    # the role follows the workspace: a viewer there cannot open settings
    assert client.get("/settings/").status_code == 403


def test_switching_to_a_workspace_you_do_not_belong_to_is_404(client, owner, other_workspace):
    client.force_login(owner)
    assert (
        client.post("/workspaces/switch/", {"workspace": other_workspace.slug}).status_code == 404
    )


def test_a_user_without_workspace_is_sent_to_create_one(client, db):
    user = UserFactory()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 302 and response.url == "/workspaces/new/"
    created = client.post(
        "/workspaces/new/", {"name": "Fresh Start", "time_zone": "Europe/Paris"}, follow=True
    )
    assert "<h1>Fresh Start</h1>" in created.text
    ws = Workspace.objects.get(name="Fresh Start")
    assert Membership.objects.get(workspace=ws, user=user).role == Role.OWNER
    assert set(Segment.objects.for_workspace(ws).values_list("predefined", flat=True)) == {
        "everyone",
        "active_mobile_users",
        "inactive_mobile_users",
    }


def test_workspace_setup_gives_the_built_in_segments_and_no_signal_does(owner):
    from accounts.services import workspace_create
    from segments.services import workspace_setup

    bare = workspace_create(name="Bare", owner=owner, actor=Actor(system="tests"))
    assert not Segment.objects.for_workspace(bare).exists()  # no hidden write on save
    ws = workspace_setup(name="Set up", owner=owner, actor=Actor(system="tests"))
    assert Segment.objects.for_workspace(ws).exclude(predefined="").count() == 3


def test_workspace_settings_save_name_and_time_zone(owner_client, workspace):
    response = owner_client.post("/settings/", {"name": "Acme EU", "time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.name, workspace.time_zone) == ("Acme EU", "Europe/Berlin")


def test_pages_show_times_in_the_workspace_time_zone(owner_client, owner, workspace):
    from datetime import UTC, datetime

    from audiences.models import AudienceImport

    job = AudienceImport.objects.create(
        workspace=workspace, created_by=owner, original_name="list.csv", file="x.csv",
        mode="single", identifier="id", audience_name="VIP", status="failed",
    )  # fmt: skip
    AudienceImport.objects.filter(pk=job.pk).update(
        created_at=datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    )
    url = f"/audiences/import/{job.pk}/"
    assert "started 15 Jan 2026 12:00" in owner_client.get(url).text  # the workspace is UTC

    workspace.time_zone = "America/New_York"
    workspace.save()
    assert "started 15 Jan 2026 07:00" in owner_client.get(url).text
    # a workspace on the other side of midnight shows the next day
    workspace.time_zone = "Pacific/Auckland"
    workspace.save()
    assert "started 16 Jan 2026 01:00" in owner_client.get(url).text


def test_workspace_settings_refuse_an_unknown_time_zone(owner_client, workspace):
    response = owner_client.post("/settings/", {"name": "Acme", "time_zone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.text
    workspace.refresh_from_db()
    assert workspace.time_zone == "UTC"


def test_inviting_a_new_person_creates_them_and_emails_a_set_password_link(
    owner_client, workspace, smtp_inbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/settings/members/", {"email": "New.Person@Example.com", "role": "ops"}
        )
    assert response.status_code == 302
    membership = Membership.objects.get(workspace=workspace, user__email="new.person@example.com")
    assert membership.role == Role.OPS
    assert not membership.user.has_usable_password()
    [mail] = smtp_inbox.messages
    assert mail["to"] == ["new.person@example.com"]
    assert "Acme" in mail["subject"]
    link = re.search(r"https?://[^/]+(/reset/\S+/)", mail["body"]).group(1)
    assert "Choose a new password" in owner_client.get(link, follow=True).text


def test_inviting_an_existing_member_keeps_their_role(owner_client, workspace, viewer):
    response = owner_client.post(
        "/settings/members/", {"email": viewer.email, "role": "admin"}, follow=True
    )
    assert "already on the team" in response.text
    assert Membership.objects.get(workspace=workspace, user=viewer).role == Role.VIEWER


def test_invite_with_a_malformed_email_is_a_form_error(owner_client, workspace):
    response = owner_client.post("/settings/members/", {"email": "not-an-email", "role": "ops"})
    assert response.status_code == 200
    assert "Enter a valid email address" in response.text


def test_an_admin_cannot_make_an_owner(client, admin_user, workspace, viewer):
    client.force_login(admin_user)
    response = client.post("/settings/members/", {"email": "x@y.test", "role": "owner"})
    assert "Only an owner can make someone an owner" in response.text
    m = Membership.objects.get(workspace=workspace, user=viewer)
    client.post(f"/settings/members/{m.id}/role/", {"role": "owner"})
    m.refresh_from_db()
    assert m.role == Role.VIEWER


def test_change_role(owner_client, workspace, viewer):
    m = Membership.objects.get(workspace=workspace, user=viewer)
    response = owner_client.post(
        f"/settings/members/{m.id}/role/", {"role": "marketer"}, follow=True
    )
    assert "is now Marketer" in response.text
    m.refresh_from_db()
    assert m.role == Role.MARKETER


def test_the_last_owner_can_be_neither_removed_nor_demoted(owner_client, owner, workspace):
    m = Membership.objects.get(workspace=workspace, user=owner)
    r1 = owner_client.post(f"/settings/members/{m.id}/remove/", follow=True)
    assert "last owner" in r1.text
    r2 = owner_client.post(f"/settings/members/{m.id}/role/", {"role": "admin"}, follow=True)
    assert "last owner" in r2.text
    m.refresh_from_db()
    assert m.role == Role.OWNER


def test_with_two_owners_one_can_step_down(owner_client, owner, workspace):
    second = UserFactory()
    MembershipFactory(workspace=workspace, user=second, role=Role.OWNER)
    m = Membership.objects.get(workspace=workspace, user=owner)
    owner_client.post(f"/settings/members/{m.id}/role/", {"role": "admin"})
    m.refresh_from_db()
    assert m.role == Role.ADMIN


def test_remove_member(owner_client, workspace, viewer):
    m = Membership.objects.get(workspace=workspace, user=viewer)
    response = owner_client.post(f"/settings/members/{m.id}/remove/", follow=True)
    assert "was removed" in response.text
    assert not Membership.objects.filter(pk=m.pk).exists()


def test_api_key_is_shown_once_and_stored_hashed(owner_client, workspace):
    response = owner_client.post("/settings/api-keys/", {"name": "CRM sync"})
    # post/redirect/get: reloading the page that shows the key makes no second key
    assert response.status_code == 302 and response.url == "/settings/api-keys/"
    shown = owner_client.get("/settings/api-keys/")
    raw = re.search(r'value="(hk_[^"]+)"', shown.text).group(1)
    key = ApiKey.objects.get(workspace=workspace, name="CRM sync")
    assert raw not in key.key_hash and key.matches(raw)
    assert "no-store" in shown.headers["Cache-Control"]
    reloaded = owner_client.get("/settings/api-keys/")
    assert raw not in reloaded.text and "CRM sync" in reloaded.text
    assert ApiKey.objects.filter(workspace=workspace).count() == 1


def test_api_key_needs_a_name(owner_client, workspace):
    response = owner_client.post("/settings/api-keys/", {"name": "  "})
    assert "This field is required" in response.text
    assert not ApiKey.objects.filter(workspace=workspace).exists()


@pytest.mark.parametrize("name", ["Acme", "acme"])
def test_workspace_slugs_stay_unique(name, owner):
    from accounts.services import workspace_create

    ws = workspace_create(name=name, owner=owner, actor=Actor(system="tests"))
    assert ws.slug != "acme" and ws.slug.startswith("acme")


def test_api_key_can_be_made_read_only(owner_client, workspace):
    page = owner_client.get("/settings/api-keys/")
    assert 'name="kind"' in page.text
    response = owner_client.post(
        "/settings/api-keys/", {"name": "BI export", "kind": "read"}, follow=True
    )
    raw = re.search(r'value="(hk_[^"]+)"', response.text).group(1)
    key = ApiKey.objects.get(workspace=workspace, name="BI export")
    assert key.kind == "read" and key.matches(raw)
    assert "Read-only" in owner_client.get("/settings/api-keys/").text


def test_api_key_kind_defaults_to_full_and_refuses_unknown_kinds(owner_client, workspace):
    owner_client.post("/settings/api-keys/", {"name": "Backend"})
    assert ApiKey.objects.get(workspace=workspace, name="Backend").kind == "full"
    response = owner_client.post("/settings/api-keys/", {"name": "Odd", "kind": "root"})
    assert "Select a valid choice" in response.text
    assert not ApiKey.objects.filter(workspace=workspace, name="Odd").exists()


# --- Workspace names are one line (they go into email subjects) -------------------------


@pytest.mark.parametrize(
    "typed", ["Acme\nBcc: victim@example.com", "Acme\r\nBcc: victim@example.com",
              "Acme \u2028 Bcc:\tvictim@example.com"],
    ids=["lf", "crlf", "line-separator"],
)  # fmt: skip
def test_a_new_workspace_name_is_kept_on_one_line(client, db, typed):
    user = UserFactory()
    client.force_login(user)
    response = client.post("/workspaces/new/", {"name": typed, "time_zone": "UTC"})
    assert response.status_code == 302
    ws = Workspace.objects.get(memberships__user=user)
    assert ws.name == "Acme Bcc: victim@example.com"


def test_workspace_settings_keep_the_name_on_one_line(owner_client, workspace):
    response = owner_client.post("/settings/", {"name": "Acme\n\nEU", "time_zone": "UTC"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "Acme EU"


@pytest.mark.parametrize(
    ("bad", "message"),
    [("Acme\x00", "Null characters are not allowed"),  # Django's own check comes first
     ("Acme\x1b[31m", "cannot contain control characters"),
     ("Acme\x7f", "cannot contain control characters")],
    ids=["nul", "escape", "delete"],
)  # fmt: skip
def test_a_workspace_name_with_control_characters_is_a_form_error(
    owner_client, workspace, bad, message
):
    response = owner_client.post("/settings/", {"name": bad, "time_zone": "UTC"})
    assert response.status_code == 200
    assert message in response.text
    workspace.refresh_from_db()
    assert workspace.name == "Acme"


def test_workspace_services_refuse_or_flatten_multi_line_names(owner):
    from django.core.exceptions import ValidationError

    from accounts.services import workspace_create, workspace_update

    ws = workspace_create(name="  Two\nLines  ", owner=owner, actor=Actor(system="tests"))
    assert ws.name == "Two Lines"
    assert workspace_update(
        workspace=ws, name="Three\r\nLines\r\n", time_zone="UTC", actor=Actor(system="tests")
    ).name == ("Three Lines")
    with pytest.raises(ValidationError):
        workspace_update(
            workspace=ws, name="Bell\x07", time_zone="UTC", actor=Actor(system="tests")
        )


def test_an_invitation_from_a_workspace_with_an_old_multi_line_name_is_sent_on_one_line(
    owner_client, workspace, smtp_inbox, django_capture_on_commit_callbacks
):
    Workspace.objects.filter(pk=workspace.pk).update(name="Acme\nBcc: victim@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            "/settings/members/", {"email": "new@example.com", "role": "ops"}
        )
    assert response.status_code == 302
    [mail] = smtp_inbox.messages
    assert mail["to"] == ["new@example.com"]
    assert mail["subject"] == "You have been invited to Acme Bcc: victim@example.com on Herald"


def test_an_invitation_is_pending_until_the_invitee_signs_in(
    owner_client, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    owner_client.post("/settings/members/", {"email": "new@acme.test", "role": "marketer"})
    membership = Membership.objects.get(workspace=workspace, user__email="new@acme.test")
    page = owner_client.get("/settings/members/").text
    assert "invitation pending" in page and f"/settings/members/{membership.pk}/resend/" in page
    assert "Revoke the invitation to new@acme.test?" in page
    sent = len(mailoutbox)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/settings/members/{membership.pk}/resend/", follow=True)
    assert "was sent again" in response.text
    assert len(mailoutbox) == sent + 1 and "/reset/" in mailoutbox[-1].body
    # once they sign in, they are a member like any other: nothing to resend
    membership.user.last_login = timezone.now()
    membership.user.save(update_fields=["last_login"])
    page = owner_client.get("/settings/members/").text
    assert "invitation pending" not in page and f"/{membership.pk}/resend/" not in page
    response = owner_client.post(f"/settings/members/{membership.pk}/resend/", follow=True)
    assert "accepted the invitation already" in response.text
    assert len(mailoutbox) == sent + 1
