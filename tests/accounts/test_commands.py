from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, Role, User, Workspace
from people.models import Person
from segments.models import Segment


def test_create_workspace_creates_the_owner_and_prints_the_slug(db):
    out = StringIO()
    call_command(
        "create_workspace", "Northwind Traders", "--owner", "Boss@Northwind.test", stdout=out
    )
    slug = out.getvalue().strip()
    assert slug == "northwind-traders"
    ws = Workspace.objects.get(slug=slug)
    owner = User.objects.get(email="boss@northwind.test")
    assert Membership.objects.get(workspace=ws, user=owner).role == Role.OWNER
    assert Segment.objects.for_workspace(ws).exclude(predefined="").count() == 3


def test_create_workspace_refuses_a_bad_email(db):
    with pytest.raises(CommandError, match="not an email address"):
        call_command("create_workspace", "X", "--owner", "nope")


def test_create_api_key_prints_a_working_key_once(client, workspace):
    out = StringIO()
    call_command("create_api_key", "--workspace", "acme", stdout=out)
    raw = out.getvalue().strip()
    key = ApiKey.objects.for_workspace(workspace).get()
    assert key.matches(raw) and raw not in key.key_hash
    response = client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {raw}"})
    assert response.json()["slug"] == "acme"


def test_create_api_key_for_an_unknown_workspace_says_so(db):
    with pytest.raises(CommandError, match="No workspace with slug 'nope'"):
        call_command("create_api_key", "--workspace", "nope")


def test_seed_demo_is_idempotent(db):
    call_command("seed_demo", stdout=StringIO())
    counts = (
        Workspace.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        Person.objects.unscoped().count(),
    )
    call_command("seed_demo", stdout=StringIO())
    assert counts == (
        Workspace.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        Person.objects.unscoped().count(),
    )
    assert counts[0] == 2 and counts[3] >= 2000
    roles = set(Membership.objects.values_list("role", flat=True))
    assert roles == set(Role.values)


def test_seed_demo_makes_nobody_staff(db):
    # Tenant admins do not need the Django admin: its pages hold every workspace's rows.
    call_command("seed_demo", stdout=StringIO())
    users = User.objects.filter(email__endswith="@demo.herald")
    assert users.filter(email__startswith="owner").exists()
    assert not users.filter(is_staff=True).exists()
    assert not users.filter(is_superuser=True).exists()
