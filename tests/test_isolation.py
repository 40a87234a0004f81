"""Tenancy: every URL that names an object answers 404 for another workspace's object.

The URLs come from the URL conf (tests/urlwalk.py), so later features are covered as soon
as they add a URL.
"""

import pytest

from tests.urlwalk import all_routes, fill_for, routes_with_objects

METHODS = ["get", "post", "put", "patch", "delete"]


def test_the_walk_sees_ui_and_api_routes():
    routes = all_routes()
    assert any(r.route.startswith("api/v1/") for r in routes)
    assert any(r.route.startswith("settings/members/") for r in routes_with_objects())


@pytest.mark.parametrize("route", routes_with_objects(), ids=lambda r: r.route)
def test_another_workspaces_object_is_not_found(route, workspace, other_workspace, client, owner):
    foreign_url = fill_for(route, other_workspace)
    if route.is_api:
        from accounts.services import api_key_create

        _, raw = api_key_create(workspace=workspace, name="isolation")
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    else:
        client.force_login(owner)
    statuses = {}
    for method in METHODS:
        response = getattr(client, method)(foreign_url, content_type="application/json", data={})
        statuses[method] = response.status_code
    assert all(s in (404, 405) for s in statuses.values()), (foreign_url, statuses)
    assert 404 in statuses.values(), (foreign_url, statuses)


@pytest.mark.parametrize("route", routes_with_objects(), ids=lambda r: r.route)
def test_own_workspaces_object_is_found(route, workspace, client, owner):
    """The control: the same URL with our own object is not a 404, so the 404 above means
    the workspace check, not a broken URL."""
    own_url = fill_for(route, workspace)
    if route.is_api:
        from accounts.services import api_key_create

        _, raw = api_key_create(workspace=workspace, name="control")
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    else:
        client.force_login(owner)
    statuses = {
        m: getattr(client, m)(own_url, content_type="application/json", data={}).status_code
        for m in METHODS
    }
    assert any(s not in (404, 405) for s in statuses.values()), (own_url, statuses)
