"""/api/v1/flows (shared/API.md "Flows"): a draft refused naming the bad step, published
(versions), people added and advanced, the runs with their log and per-step counts, the
lifecycle with 409s, another workspace's flow not found."""

import pytest

from audiences.services import audience_get_or_create
from campaigns.flows import engine
from tests.factories import PersonFactory

BASE = "/api/v1/flows"


def post(client, path, body=None):
    return client.post(f"{BASE}{path}", body or {}, content_type="application/json")


@pytest.fixture
def people(workspace):
    return [PersonFactory(workspace=workspace, external_id=f"p{i}") for i in range(3)]


def test_a_flow_through_the_api(api_client, workspace, people):
    from accounts.audit import Actor

    vip, _ = audience_get_or_create(workspace=workspace, name="VIP", actor=Actor.of_system("t"))
    bad = post(api_client, "", {"name": "F", "entry": {"type": "manual"}, "steps": [
        {"id": "a", "type": "add_tag", "tag": "x", "next": "nowhere"}]})  # fmt: skip
    assert bad.status_code == 422 and "steps.a.next" in bad.content.decode()
    created = post(api_client, "", {"name": "Welcome", "entry": {"type": "manual"}, "steps": [
        {"id": "tag", "type": "add_tag", "tag": "Welcomed", "next": "vip"},
        {"id": "vip", "type": "add_to_audience", "audience": vip.pk},
    ]})  # fmt: skip
    assert created.status_code == 201, created.content
    flow = created.json()
    assert (flow["status"], flow["version"]) == ("draft", 0)
    early = post(api_client, f"/{flow['id']}/people", {"people": ["p0"]})
    assert early.status_code == 409  # not live yet
    published = post(api_client, f"/{flow['id']}/publish")
    assert published.status_code == 200 and published.json()["version"] == 1
    added = post(api_client, f"/{flow['id']}/people", {"people": ["p0", "p1"]})
    assert added.json() == {"started": 2}
    unknown = post(api_client, f"/{flow['id']}/people", {"people": ["nobody"]})
    assert unknown.status_code == 422 and "nobody" in unknown.content.decode()
    both = post(api_client, f"/{flow['id']}/people", {"people": ["p0"], "tags": ["x"]})
    assert both.status_code == 422
    engine.advance()
    body = api_client.get(f"{BASE}/{flow['id']}").json()
    assert body["counts"] == [{"step": "tag", "type": "add_tag", "at": 0, "through": 2},
                              {"step": "vip", "type": "add_to_audience", "at": 0,
                               "through": 2}]  # fmt: skip
    assert body["runs"] == {"done": 2}
    runs = api_client.get(f"{BASE}/{flow['id']}/runs", {"person": "p0"}).json()["items"]
    assert len(runs) == 1 and runs[0]["status"] == "done" and runs[0]["version"] == 1
    assert [e["step"] for e in runs[0]["log"]] == ["tag", "vip"]
    assert post(api_client, f"/{flow['id']}/resume").status_code == 409
    assert post(api_client, f"/{flow['id']}/pause").json()["status"] == "paused"
    assert post(api_client, f"/{flow['id']}/archive").json()["status"] == "archived"
    assert api_client.patch(f"{BASE}/{flow['id']}", {"name": "X"},
                            content_type="application/json").status_code == 409  # fmt: skip


def test_another_workspaces_flow_is_not_found(api_client, other_workspace):
    from accounts.audit import Actor
    from campaigns.flows.services import flow_create

    theirs = flow_create(workspace=other_workspace, name="Theirs", actor=Actor.of_system("t"))
    assert api_client.get(f"{BASE}/{theirs.pk}").status_code == 404
    assert post(api_client, f"/{theirs.pk}/publish").status_code == 404
    assert api_client.get(BASE).json()["items"] == []
