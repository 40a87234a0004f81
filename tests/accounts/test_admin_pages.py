"""Every model is in the Django admin, and every admin list opens for a staff member."""

import pytest
from django.apps import apps
from django.contrib import admin

from accounts.models import Role
from tests.factories import MembershipFactory, UserFactory

OURS = {"accounts", "people", "audiences", "segments", "channels", "campaigns"}


def test_every_model_of_herald_has_an_admin():
    ours = OURS
    missing = [
        m._meta.label for m in apps.get_models()
        if m._meta.app_label in ours and m not in admin.site._registry
    ]  # fmt: skip
    assert missing == []


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
