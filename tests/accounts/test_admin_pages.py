"""Every model is in the Django admin, and every admin list opens for a staff member."""

import pytest
from django.apps import apps
from django.contrib import admin

from accounts.audit import Actor
from accounts.models import Role
from tests.factories import MembershipFactory, UserFactory

OURS = {"accounts", "people", "audiences", "segments", "channels", "campaigns"}


def test_every_model_of_herald_has_an_admin():
    """Every model, except those Django's admin cannot show (a composite primary key):
    their rows are reached from the admin of what they belong to."""
    ours = OURS
    missing = [
        m._meta.label for m in apps.get_models()
        if m._meta.app_label in ours and m not in admin.site._registry
        and not m._meta.is_composite_pk
    ]  # fmt: skip
    assert missing == []
    composite = [
        m._meta.label for m in apps.get_models()
        if m._meta.app_label in ours and m._meta.is_composite_pk
    ]  # fmt: skip
    assert composite == ["audiences.AudienceMember"]


def test_an_audiences_admin_page_links_to_its_members(client, workspace):
    from audiences.services import audience_create

    audience = audience_create(workspace=workspace, name="VIP", actor=Actor(system="tests"))
    user = UserFactory(is_staff=True, is_superuser=True)
    MembershipFactory(workspace=workspace, user=user, role=Role.ADMIN)
    client.force_login(user)
    page = client.get(f"/admin/audiences/targetaudience/{audience.pk}/change/").content.decode()
    assert f'href="/audiences/{audience.pk}/"' in page and "0 members on the audience page" in page


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in OURS],
    ids=lambda m: m._meta.label,
)  # fmt: skip
def test_admin_changelist_opens(client, workspace, model):
    user = UserFactory(is_staff=True, is_superuser=True)
    MembershipFactory(workspace=workspace, user=user, role=Role.ADMIN)
    client.force_login(user)
    url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    assert client.get(url).status_code == 200
