"""The Django admin cannot be used to reach, change or escalate beyond the admin user's own
workspaces and roles: import/export, foreign keys, the User admin, and CSV exports.

Each test signs in through the test client as a staff user of one workspace and tries to
reach another workspace's rows (or a higher role) the way an attacker would.
"""

import csv
import io

import pytest
import tablib
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms import BooleanField, MultiWidget
from django.test import RequestFactory
from import_export import resources

from accounts import admin_scoping
from accounts.admin_scoping import WorkspaceScopedAdmin, WorkspaceScopedResource
from accounts.audit import Actor
from accounts.models import ApiKey, Membership, Role
from accounts.services import api_key_create
from people.models import Person, Tag
from segments.models import Segment
from tests.factories import (
    CompanyFactory,
    MembershipFactory,
    PersonFactory,
    TagFactory,
    UserFactory,
)


def _staff(workspace, *, role=Role.ADMIN, perms=(), superuser=False, email=None):
    """A staff user, member of `workspace` with `role`, holding the Django permissions
    `perms` ("app_label.codename")."""
    extra = {"email": email} if email else {}
    user = UserFactory(is_staff=True, is_superuser=superuser, **extra)
    MembershipFactory(workspace=workspace, user=user, role=role)
    for label in perms:
        app_label, codename = label.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def _model_perms(label, *actions):
    app_label, model = label.split(".")
    return [f"{app_label}.{action}_{model}" for action in actions]


ALL = ("view", "add", "change", "delete")


def _import(client, base_url, text):
    """Run the admin's two-step import (dry run, then confirm) of a CSV file."""
    upload = SimpleUploadedFile("rows.csv", text.encode(), content_type="text/csv")
    page = client.post(
        f"{base_url}import/", {"import_file": upload, "format": "0", "resource": "0"}
    )
    if page.status_code != 200 or page.context.get("confirm_form") is None:
        return page
    confirm = page.context["confirm_form"]
    return client.post(f"{base_url}process_import/", dict(confirm.initial))


def _export(client, base_url):
    """Ask the admin's export view for a CSV of every field."""
    page = client.get(f"{base_url}export/")
    if page.status_code != 200:
        return page
    form = page.context["form"]
    data = {"format": "0", "resource": "0"}
    data.update({name: "on" for name, f in form.fields.items() if isinstance(f, BooleanField)})
    return client.post(f"{base_url}export/", data)


def _change_form_data(page):
    """The change form's current values, as the browser would post them back."""
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = field.prepare_value(form[name].value())
        if isinstance(field, BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(field.widget, MultiWidget):
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = "" if part is None else part
        else:
            data[name] = "" if value is None else value
    return data


# --- 1. import ---------------------------------------------------------------------------


def test_import_and_export_need_the_models_permissions(client, workspace):
    """A staff member without the model's permissions can neither import nor export it."""
    TagFactory(workspace=workspace, name="VIP")
    client.force_login(_staff(workspace, perms=_model_perms("people.tag", "view")))
    assert client.get("/admin/people/tag/import/").status_code == 403
    response = _import(client, "/admin/people/tag/", f"workspace,name\n{workspace.id},Sneaky\n")
    assert response.status_code == 403
    assert not Tag.objects.for_workspace(workspace).filter(name="Sneaky").exists()

    client.force_login(_staff(workspace, perms=_model_perms("people.person", *ALL)))
    assert client.get("/admin/people/tag/export/").status_code == 403
    assert _export(client, "/admin/people/tag/").status_code == 403


def test_import_with_the_models_permissions_still_works(client, workspace):
    client.force_login(_staff(workspace, perms=_model_perms("people.tag", *ALL)))
    response = _import(client, "/admin/people/tag/", f"workspace,name\n{workspace.id},Fresh\n")
    assert response.status_code == 302
    assert Tag.objects.for_workspace(workspace).filter(name="Fresh").exists()


@pytest.mark.parametrize("target", ["their_id_into_ours", "their_workspace"])
def test_segment_import_cannot_touch_another_workspaces_segments(
    client, workspace, other_workspace, target
):
    theirs = Segment.objects.create(workspace=other_workspace, name="Theirs", kind="static")
    before = set(Segment.objects.for_workspace(other_workspace).values_list("id", "name"))
    client.force_login(_staff(workspace, perms=_model_perms("segments.segment", *ALL)))
    if target == "their_id_into_ours":
        text = f"id,workspace,name,kind\n{theirs.id},{workspace.id},Hijacked,static\n"
    else:
        text = f"workspace,name,kind\n{other_workspace.id},Planted,static\n"
    _import(client, "/admin/segments/segment/", text)
    theirs.refresh_from_db()
    assert (theirs.workspace_id, theirs.name) == (other_workspace.id, "Theirs")
    assert set(Segment.objects.for_workspace(other_workspace).values_list("id", "name")) == before
    assert not Segment.objects.unscoped().filter(name__in=["Hijacked", "Planted"]).exists()


def test_a_scoped_admin_without_a_scoped_resource_refuses_import(workspace):
    """Fail closed: an admin on the scoped base that forgot (or mis-declared) its resource
    cannot import, even for a superuser; its export still goes through a scoped resource."""

    class Forgot(WorkspaceScopedAdmin):
        pass

    class PlainTagResource(resources.ModelResource):
        class Meta:
            model = Tag

    class Unscoped(WorkspaceScopedAdmin):
        resource_classes = [PlainTagResource]

    request = RequestFactory().get("/admin/people/tag/")
    request.user = _staff(workspace, superuser=True)
    for admin_class in (Forgot, Unscoped):
        model_admin = admin_class(Tag, admin.site)
        assert model_admin.has_import_permission(request) is False
    exported = Forgot(Tag, admin.site).get_export_resource_classes(request)
    assert all(issubclass(r, WorkspaceScopedResource) for r in exported)
    assert Unscoped(Tag, admin.site).has_export_permission(request) is False


@pytest.mark.parametrize(
    "model_admin",
    [a for a in admin.site._registry.values() if isinstance(a, WorkspaceScopedAdmin)],
    ids=lambda a: a.model._meta.label,
)  # fmt: skip
def test_every_scoped_admin_imports_and_exports_through_scoped_resources(workspace, model_admin):
    request = RequestFactory().get("/admin/")
    request.user = _staff(workspace, superuser=True)
    if model_admin.has_import_permission(request):
        classes = model_admin.get_import_resource_classes(request)
        assert classes and all(issubclass(r, WorkspaceScopedResource) for r in classes)
    classes = model_admin.get_export_resource_classes(request)
    assert classes and all(issubclass(r, WorkspaceScopedResource) for r in classes)


def test_membership_import_cannot_make_an_owner(client, workspace):
    member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    importer = _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.membership", *ALL))
    mine = Membership.objects.get(user=importer)
    client.force_login(importer)
    for membership in (member, mine):
        text = (
            f"id,workspace,user,role\n{membership.id},{workspace.id},{membership.user_id},owner\n"
        )
        _import(client, "/admin/accounts/membership/", text)
        membership.refresh_from_db()
        assert membership.role != Role.OWNER


def test_membership_import_cannot_raise_a_role_above_the_importers(client, workspace):
    member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    importer = _staff(
        workspace, role=Role.MARKETER, perms=_model_perms("accounts.membership", *ALL)
    )
    client.force_login(importer)
    text = f"id,workspace,user,role\n{member.id},{workspace.id},{member.user_id},admin\n"
    _import(client, "/admin/accounts/membership/", text)
    member.refresh_from_db()
    assert member.role == Role.VIEWER


def test_membership_import_up_to_the_importers_role_works(client, workspace):
    member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    client.force_login(
        _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.membership", *ALL))
    )
    text = f"id,workspace,user,role\n{member.id},{workspace.id},{member.user_id},marketer\n"
    assert _import(client, "/admin/accounts/membership/", text).status_code == 302
    member.refresh_from_db()
    assert member.role == Role.MARKETER


def test_a_superuser_may_import_an_owner(client, workspace):
    member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    client.force_login(_staff(workspace, role=Role.ADMIN, superuser=True))
    text = f"id,workspace,user,role\n{member.id},{workspace.id},{member.user_id},owner\n"
    assert _import(client, "/admin/accounts/membership/", text).status_code == 302
    member.refresh_from_db()
    assert member.role == Role.OWNER


def test_membership_change_form_cannot_make_an_owner(client, workspace):
    member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    client.force_login(
        _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.membership", *ALL))
    )
    url = f"/admin/accounts/membership/{member.pk}/change/"
    data = {**_change_form_data(client.get(url)), "role": Role.OWNER}
    client.post(url, data)
    member.refresh_from_db()
    assert member.role == Role.VIEWER


def test_an_admin_cannot_remove_an_owner_in_the_admin(client, workspace):
    owner = MembershipFactory(workspace=workspace, role=Role.OWNER)
    client.force_login(
        _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.membership", *ALL))
    )
    client.post(f"/admin/accounts/membership/{owner.pk}/delete/", {"post": "yes"})
    client.post(
        "/admin/accounts/membership/",
        {"action": "delete_selected", "_selected_action": [owner.pk], "post": "yes"},
    )
    assert Membership.objects.filter(pk=owner.pk).exists()


# --- 2. foreign keys and the User admin -------------------------------------------------


def test_user_selects_list_only_users_of_the_admins_workspaces(client, workspace, other_workspace):
    stranger = UserFactory(email="stranger@other.test")
    MembershipFactory(workspace=other_workspace, user=stranger, role=Role.OWNER)
    colleague = UserFactory(email="colleague@acme.test")
    MembershipFactory(workspace=workspace, user=colleague)
    key, _raw = api_key_create(workspace=workspace, name="ci", actor=Actor(system="tests"))
    client.force_login(_staff(workspace, perms=_model_perms("accounts.apikey", *ALL)))
    page = client.get(f"/admin/accounts/apikey/{key.pk}/change/")
    assert page.status_code == 200
    assert "colleague@acme.test" in page.text
    assert "stranger@other.test" not in page.text
    # and a posted id of a stranger is refused, not saved
    data = {**_change_form_data(page), "created_by": stranger.pk}
    client.post(f"/admin/accounts/apikey/{key.pk}/change/", data)
    key.refresh_from_db()
    assert key.created_by_id != stranger.pk


def test_raw_id_company_of_another_workspace_is_refused(client, workspace, other_workspace):
    person = PersonFactory(workspace=workspace)
    theirs = CompanyFactory(workspace=other_workspace, name="Their Co")
    client.force_login(_staff(workspace, perms=_model_perms("people.person", *ALL)))
    url = f"/admin/people/person/{person.pk}/change/"
    data = {**_change_form_data(client.get(url)), "company": theirs.pk}
    page = client.post(url, data)
    assert page.status_code == 200  # the form again, with an error
    person.refresh_from_db()
    assert person.company_id is None


def test_a_company_of_another_of_the_admins_workspaces_is_refused(
    client, workspace, other_workspace
):
    """An admin of two workspaces still cannot link rows across them."""
    person = PersonFactory(workspace=workspace)
    theirs = CompanyFactory(workspace=other_workspace, name="Their Co")
    user = _staff(workspace, perms=_model_perms("people.person", *ALL))
    MembershipFactory(workspace=other_workspace, user=user, role=Role.ADMIN)
    client.force_login(user)
    url = f"/admin/people/person/{person.pk}/change/"
    data = {**_change_form_data(client.get(url)), "company": theirs.pk}
    client.post(url, data)
    person.refresh_from_db()
    assert person.company_id is None
    ours = CompanyFactory(workspace=workspace, name="Our Co")
    data["company"] = ours.pk
    assert client.post(url, data).status_code == 302
    person.refresh_from_db()
    assert person.company_id == ours.pk


def test_import_cannot_link_to_another_workspaces_rows(workspace, other_workspace):
    """A resource's foreign keys are checked like the form's: same workspace only."""

    class PersonCompanyResource(WorkspaceScopedResource):
        class Meta:
            model = Person
            import_id_fields = ("workspace", "external_id")
            fields = ("workspace", "external_id", "company")

    theirs = CompanyFactory(workspace=other_workspace)
    data = tablib.Dataset(headers=["workspace", "external_id", "company"])
    data.append([workspace.id, "linked", theirs.id])
    user = _staff(workspace, superuser=True)
    result = PersonCompanyResource(user=user).import_data(data, dry_run=False, raise_errors=False)
    assert result.has_validation_errors() or result.has_errors()
    assert not Person.objects.unscoped().filter(external_id="linked").exists()


def test_membership_import_cannot_pull_in_a_user_from_outside(client, workspace, other_workspace):
    """An imported row's user must be one the admin user can see (a member of their
    workspaces): an id is not a way to add strangers, nor to learn which ids exist."""
    stranger = MembershipFactory(workspace=other_workspace, role=Role.VIEWER).user
    client.force_login(
        _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.membership", *ALL))
    )
    text = f"workspace,user,role\n{workspace.id},{stranger.id},viewer\n"
    page = _import(client, "/admin/accounts/membership/", text)
    assert "is not a member of your workspaces" in page.text
    assert not Membership.objects.filter(workspace=workspace, user=stranger).exists()


def test_a_non_superuser_cannot_make_themself_superuser(client, workspace):
    user = _staff(workspace, perms=_model_perms("accounts.user", *ALL))
    client.force_login(user)
    url = f"/admin/accounts/user/{user.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    for name in ("is_superuser", "is_staff", "groups", "user_permissions"):
        assert f'name="{name}"' not in page.text
    data = {**_change_form_data(page), "is_superuser": "on", "is_staff": "on"}
    data["user_permissions"] = [Permission.objects.get(codename="delete_workspace").pk]
    client.post(url, data)
    user.refresh_from_db()
    assert not user.is_superuser
    assert not user.has_perm("accounts.delete_workspace")


def test_a_non_superuser_cannot_take_over_a_superuser_or_a_higher_role(client, workspace):
    boss = _staff(workspace, role=Role.OWNER, superuser=True, email="boss@acme.test")
    owner = UserFactory(email="owner2@acme.test")
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    client.force_login(
        _staff(workspace, role=Role.ADMIN, perms=_model_perms("accounts.user", *ALL))
    )
    for target in (boss, owner):
        assert client.get(f"/admin/accounts/user/{target.pk}/password/").status_code == 403
        response = client.post(
            f"/admin/accounts/user/{target.pk}/password/",
            {"password1": "N3w-passw0rd-x!", "password2": "N3w-passw0rd-x!"},
        )
        assert response.status_code == 403
        target.refresh_from_db()
        assert target.check_password("correct-horse-battery-staple")


def test_a_non_superuser_cannot_edit_groups(client, workspace):
    group = Group.objects.create(name="Support")
    user = _staff(workspace, perms=_model_perms("auth.group", *ALL))
    user.groups.add(group)
    client.force_login(user)
    assert client.get(f"/admin/auth/group/{group.pk}/change/").status_code == 403


# --- 3. CSV-safe exports ------------------------------------------------------------------


FORMULAE = ['=HYPERLINK("http://x.test")', "+1+2", "-1+2", "@SUM(A1)", "\t=1+2", "\r=1+2"]


def test_admin_export_neutralizes_formula_cells(client, workspace):
    for name in FORMULAE:
        TagFactory(workspace=workspace, name=name)
    client.force_login(_staff(workspace, superuser=True))
    response = _export(client, "/admin/people/tag/")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    names = sorted(row["name"] for row in rows)
    assert len(names) == len(FORMULAE)
    assert all(name.startswith("'") for name in names), names


def test_every_admin_exports_csv_only_through_the_safe_format(workspace):
    request = RequestFactory().get("/admin/")
    request.user = _staff(workspace, superuser=True)
    for model_admin in admin.site._registry.values():
        if hasattr(model_admin, "get_export_formats"):
            assert model_admin.get_export_formats() == [admin_scoping.SafeCSV], model_admin


def test_safe_csv_leaves_plain_values_and_numbers_alone():
    data = tablib.Dataset(headers=["a", "b", "c"])
    data.append(["London", "-12.5", "a=b"])
    assert admin_scoping.SafeCSV().export_data(data) == "a,b,c\r\nLondon,-12.5,a=b\r\n"


def test_api_key_export_leaves_the_hash_out(workspace):
    api_key_create(workspace=workspace, name="ci", actor=Actor(system="tests"))
    model_admin = admin.site._registry[ApiKey]
    request = RequestFactory().get("/admin/")
    request.user = _staff(workspace, superuser=True)
    (resource_class,) = model_admin.get_export_resource_classes(request)
    assert "key_hash" not in resource_class(user=request.user).get_export_headers()


def test_segment_rules_are_read_only_in_the_change_form(client, workspace):
    # Rule writes go through segments.services (parsed, checked for cycles, members
    # recomputed); the admin must not store a rule tree it never parsed.
    rules = {"all": [{"attr": "city", "op": "eq", "value": "London"}]}
    segment = Segment.objects.create(workspace=workspace, name="London", kind="query", rules=rules)
    client.force_login(_staff(workspace, perms=_model_perms("segments.segment", *ALL)))
    url = f"/admin/segments/segment/{segment.pk}/change/"
    page = client.get(url)
    assert "rules" not in page.context["adminform"].form.fields
    data = {**_change_form_data(page), "rules": '{"nonsense": true}', "name": "Renamed"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    segment.refresh_from_db()
    assert segment.name == "Renamed" and segment.rules == rules
