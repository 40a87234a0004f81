"""Tenancy: every URL that names an object answers 404 for another workspace's object, and
no request through any URL changes another workspace's data.

The URLs come from the URL conf (tests/urlwalk.py), so later features are covered as soon
as they add a URL.
"""

import pytest
from django.apps import apps

from accounts.audit import Actor
from accounts.services import api_key_create
from tests.urlwalk import all_routes, fill_for, routes_with_objects

# Upserting writes go last, so a created object of our own cannot answer the others.
METHODS = ["get", "delete", "patch", "post", "put"]
# A body that is valid for the API's list-taking writes, so that a write reaches its
# lookup instead of stopping at body validation (bodies with fields an operation does not
# take are refused, so the other writes get theirs).
BODY = {"people": []}
BODIES = {
    ("api/v1/segments/<int:segment_id>", "patch"): {"name": "Renamed"},
    ("api/v1/segments/<int:segment_id>/to-audience", "post"): {"audience": "A", "action": "add"},
    ("api/v1/channels/<channel>/provider/test", "post"): {"to": "a@example.com"},
    ("api/v1/channels/<channel>/provider", "put"): {"kind": "sandbox"},
    ("api/v1/channels/push/provider/<platform>", "put"): {"kind": "sandbox"},
    ("api/v1/channels/<channel>/segments/<int:entry_id>", "patch"): {"name": "Renamed"},
    ("api/v1/channels/<channel>/audiences/<int:channel_audience_id>", "patch"): {"name": "R"},
    ("api/v1/channels/<channel>/audiences/<int:channel_audience_id>/clone", "post"): {
        "name": "Copy"
    },
    ("api/v1/channels/meta/audiences/<int:channel_audience_id>/export", "post"): {"replace": False},
    ("api/v1/campaigns/<int:campaign_id>", "patch"): {"name": "Renamed"},
    ("api/v1/campaigns/<int:campaign_id>/launch", "post"): {},
    ("api/v1/campaigns/<int:campaign_id>/winner", "post"): {"variant": "A"},
    ("api/v1/flows/<int:flow_id>", "patch"): {"name": "Renamed"},
    ("api/v1/campaigns/<int:campaign_id>/test", "post"): {"people": ["p1"]},
}

# Writes the API contract defines as "create or update by this key in the caller's
# workspace": a name or external id that only exists elsewhere makes a new object in the
# caller's own workspace. They must still leave the other workspace untouched.
UPSERTS_BY_KEY = {
    ("api/v1/people/<external_id>", "put"),
    ("api/v1/tags/<name>/people", "post"),
    # a workspace's provider of a channel is set by naming the channel
    ("api/v1/channels/<channel>/provider", "put"),
    ("api/v1/channels/push/provider/<platform>", "put"),
}


# URLs that name nothing but a channel: the caller's own workspace's list, audiences,
# source or sync of that channel (a channel is not an object of another workspace). The
# other workspace must still be left untouched.
OWN_CHANNEL_COLLECTIONS = {
    "api/v1/channels/<channel>/segments",
    "api/v1/channels/<channel>/segments/upload",
    "api/v1/channels/<channel>/audiences",
    "api/v1/channels/<channel>/source",
    "api/v1/channels/<channel>/sync",
}


def fingerprint(workspace) -> dict:
    """Every row of every workspace-owned table that belongs to `workspace`."""
    state = {}
    for model in apps.get_models():
        if any(f.name == "workspace" for f in model._meta.fields):
            manager = model._default_manager
            rows = (manager.unscoped() if hasattr(manager, "unscoped") else manager.all()).filter(
                workspace=workspace
            )
            state[model._meta.label] = sorted(map(repr, rows.values_list()))
    return state


def _sign_in(client, route, workspace, owner):
    if route.is_api:
        _, raw = api_key_create(workspace=workspace, name="isolation", actor=Actor(system="tests"))
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    else:
        client.force_login(owner)


def test_the_walk_sees_ui_and_api_routes():
    routes = all_routes()
    assert any(r.route.startswith("api/v1/") for r in routes)
    assert any(r.route.startswith("settings/members/") for r in routes_with_objects())


@pytest.mark.parametrize("route", routes_with_objects(), ids=lambda r: r.route)
def test_another_workspaces_object_is_not_found(route, workspace, other_workspace, client, owner):
    foreign_url = fill_for(route, other_workspace)
    _sign_in(client, route, workspace, owner)
    before = fingerprint(other_workspace)
    statuses = {}
    for method in METHODS:
        body = BODIES.get((route.route, method), BODY)
        response = getattr(client, method)(foreign_url, content_type="application/json", data=body)
        statuses[method] = response.status_code
    assert fingerprint(other_workspace) == before, f"{foreign_url} changed another workspace"
    if route.route in OWN_CHANNEL_COLLECTIONS:
        return
    for method, status in statuses.items():
        if (route.route, method) in UPSERTS_BY_KEY:
            continue
        assert status in (404, 405), (foreign_url, method, statuses)
    assert 404 in statuses.values(), (foreign_url, statuses)


@pytest.mark.parametrize("route", routes_with_objects(), ids=lambda r: r.route)
def test_own_workspaces_object_is_found(route, workspace, client, owner):
    """The control: the same URL with our own object is not a 404, so the 404 above means
    the workspace check, not a broken URL."""
    own_url = fill_for(route, workspace)
    _sign_in(client, route, workspace, owner)
    statuses = {
        m: getattr(client, m)(own_url, content_type="application/json", data=BODY).status_code
        for m in METHODS
    }
    assert any(s not in (404, 405) for s in statuses.values()), (own_url, statuses)
