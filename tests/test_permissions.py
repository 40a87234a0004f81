"""Roles: each role can do what it may and gets 403 for the rest, on every UI URL.

Views declare their least role with accounts.permissions.role_required, which records it
on the view; this walk reads it from every URL of the URL conf.
"""

import pytest

from accounts.models import ROLE_RANK, Role
from tests.urlwalk import all_routes, fill_for


def _role_routes():
    routes = []
    for route in all_routes():
        if route.is_api:
            continue
        view = route.callback
        if hasattr(view, "required_role"):
            routes.append(route)
    return routes


ROLES = [Role.VIEWER, Role.OPS, Role.MARKETER, Role.ADMIN, Role.OWNER]


def test_every_workspace_page_declares_its_role():
    """A page of the app that forgets role_required would be open to any signed-in user."""
    open_pages = {
        "login",
        "logout",
        "password_reset",
        "password_reset_done",
        "password_reset_complete",
        "healthz",
        "workspace_switch",
        "workspace_create",
    }
    unguarded = [
        r.route
        for r in all_routes()
        if not r.is_api and r.name not in open_pages and not hasattr(r.callback, "required_role")
    ]
    assert unguarded == []


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", _role_routes(), ids=lambda r: r.route)
def test_role_gets_403_below_the_required_role_and_passes_at_or_above(
    route, role, workspace, member_client
):
    client = member_client(role)
    url = fill_for(route, workspace)
    view = route.callback
    read_ok = ROLE_RANK[role] >= ROLE_RANK[Role(view.required_role)]
    write_ok = ROLE_RANK[role] >= ROLE_RANK[Role(view.required_write_role)]

    get = client.get(url)
    if get.status_code != 405:
        assert (get.status_code == 403) == (not read_ok), (url, role, get.status_code)
    post = client.post(url, {})
    if post.status_code != 405:
        assert (post.status_code == 403) == (not write_ok), (url, role, post.status_code)


def test_viewer_sees_the_dashboard_but_not_settings(workspace, member_client):
    client = member_client(Role.VIEWER)
    assert client.get("/").status_code == 200
    assert client.get("/settings/").status_code == 403
    assert client.get("/settings/members/").status_code == 403


def test_admin_manages_members_and_keys(workspace, member_client):
    client = member_client(Role.ADMIN)
    assert client.get("/settings/members/").status_code == 200
    r = client.post("/settings/api-keys/", {"name": "CRM sync"}, follow=True)
    assert r.status_code == 200 and b"hk_" in r.content


def test_dashboard_cards_open_their_pages_the_role_may_open(workspace, member_client):
    viewer = member_client(Role.VIEWER).get("/").content.decode()
    for url in ("/people/", "/segments/", "/audiences/", "/tags/", "/dnc/"):
        assert f'href="{url}" class="stretched-link' in viewer, url
    assert 'data-stat="segments"' in viewer and 'data-stat="target-audiences"' in viewer
    assert 'href="/settings/members/" class="stretched-link' not in viewer
    admin = member_client(Role.ADMIN).get("/").content.decode()
    assert 'href="/settings/members/" class="stretched-link' in admin
    assert 'href="/settings/api-keys/" class="stretched-link' in admin
