"""The Django admin and its import-export resources stay inside the admin user's workspaces."""

import tablib

from accounts.models import Role
from people.admin import PersonResource
from people.models import Person
from tests.factories import MembershipFactory, PersonFactory, UserFactory


def _staff(workspace):
    user = UserFactory(is_staff=True, is_superuser=True)
    MembershipFactory(workspace=workspace, user=user, role=Role.ADMIN)
    return user


def test_admin_lists_only_the_users_workspaces(client, workspace, other_workspace):
    PersonFactory(workspace=workspace, external_id="ours-1")
    PersonFactory(workspace=other_workspace, external_id="theirs-1")
    client.force_login(_staff(workspace))
    page = client.get("/admin/people/person/")
    assert page.status_code == 200
    assert "ours-1" in page.text and "theirs-1" not in page.text
    theirs = Person.objects.unscoped().get(external_id="theirs-1")
    assert client.get(f"/admin/people/person/{theirs.pk}/change/").status_code in (302, 404)


def test_export_contains_only_the_users_workspaces(workspace, other_workspace):
    PersonFactory(workspace=workspace, external_id="ours-1")
    PersonFactory(workspace=other_workspace, external_id="theirs-1")
    dataset = PersonResource(user=_staff(workspace)).export()
    assert dataset["external_id"] == ["ours-1"]


def test_import_refuses_rows_for_another_workspace_and_writes_nothing(workspace, other_workspace):
    user = _staff(workspace)
    data = tablib.Dataset(headers=["workspace", "external_id", "email"])
    data.append([workspace.id, "new-ours", "a@x.test"])
    data.append([other_workspace.id, "sneaky", "b@x.test"])
    result = PersonResource(user=user).import_data(data, dry_run=False, raise_errors=False)
    assert result.has_validation_errors() or result.has_errors()
    assert not Person.objects.unscoped().filter(external_id="sneaky").exists()
    assert not Person.objects.unscoped().filter(external_id="new-ours").exists()  # all or nothing


def test_import_into_own_workspace_works(workspace):
    user = _staff(workspace)
    data = tablib.Dataset(headers=["workspace", "external_id", "email"])
    data.append([workspace.id, "new-ours", "a@x.test"])
    result = PersonResource(user=user).import_data(data, dry_run=False, raise_errors=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert Person.objects.for_workspace(workspace).filter(external_id="new-ours").exists()
