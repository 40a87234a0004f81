"""The flow pages: the list, a flow's page (its steps as a tree with people at and through
each, failures, publish / pause / resume / archive through the page, refusals shown), the
run log searchable by person, the flows on a person's profile; a viewer reads but does not
change; another workspace's flow is not found."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import Role
from audiences.services import audience_get_or_create
from campaigns.flows import engine
from campaigns.flows.services import flow_add_people, flow_create, flow_publish
from campaigns.models import Flow
from people.models import Person
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")


@pytest.fixture
def client_(client, marketer):
    client.force_login(marketer)
    return client


def text(response) -> str:
    return response.content.decode()


def welcome(workspace, people):
    gone, _ = audience_get_or_create(workspace=workspace, name="Gone", actor=ACTOR)
    flow = flow_create(workspace=workspace, name="Welcome", actor=ACTOR, entry={"type": "manual"},
                       steps=[
        {"id": "tag", "type": "add_tag", "tag": "New", "next": "split"},
        {"id": "split", "type": "split", "paths": [{"percent": 50, "next": "wait"},
                                                   {"percent": 50, "next": "aud"}]},
        {"id": "wait", "type": "wait", "for": {"amount": 2, "unit": "days"}},
        {"id": "aud", "type": "add_to_audience", "audience": gone.pk},
    ])  # fmt: skip
    flow_publish(flow=flow, actor=ACTOR)
    flow_add_people(flow=flow, people=Person.objects.filter(pk__in=[p.pk for p in people]),
                    actor=ACTOR)  # fmt: skip
    gone.delete()  # its step fails for whoever reaches it
    engine.advance(now=timezone.now() + timedelta(seconds=1))
    return flow


def test_the_list_the_flow_page_and_its_run_log(client_, workspace):
    people = [PersonFactory(workspace=workspace, external_id=f"p{i}", email=f"p{i}@x.test")
              for i in range(20)]  # fmt: skip
    flow = welcome(workspace, people)
    listing = text(client_.get("/flows/"))
    assert 'data-flow="Welcome"' in listing
    page = text(client_.get(f"/flows/{flow.pk}/"))
    def count(attr, step):
        return int(re.search(rf'data-{attr}="{step}"[^>]*>(\d+)', page).group(1))

    assert count("through", "tag") == 20 and 'id="flow-failures"' in page
    waiting = count("at", "wait")
    failed = int(page.split('data-runs="failed">')[1].split("<")[0])
    assert waiting + failed == 20 and waiting > 0 and failed > 0
    assert "was deleted" in page
    assert "path 1 (50%)" in page  # the split's paths under it
    log = text(client_.get(f"/flows/{flow.pk}/runs/", {"q": "p1"}))
    assert 'data-run="p1"' in log and 'data-run="p2"' not in log and "tag (add_tag)" in log
    failed_only = text(client_.get(f"/flows/{flow.pk}/runs/", {"status": "failed"}))
    assert failed_only.count("data-run=") == failed
    profile = text(client_.get(f"/people/{people[0].pk}/"))
    assert 'data-flow-run="Welcome"' in profile


def test_the_lifecycle_through_the_page(client_, workspace):
    flow = flow_create(workspace=workspace, name="Draft", actor=ACTOR,
                       steps=[{"id": "t", "type": "add_tag", "tag": "X"}])  # fmt: skip
    refused = client_.post(f"/flows/{flow.pk}/publish/", follow=True)
    assert "Not published" in text(refused) and "enter" in text(refused)
    Flow.objects.filter(pk=flow.pk).update(entry={"type": "manual"})
    client_.post(f"/flows/{flow.pk}/publish/")
    flow.refresh_from_db()
    assert (flow.status, flow.version) == ("live", 1)
    client_.post(f"/flows/{flow.pk}/pause/")
    flow.refresh_from_db()
    assert flow.status == "paused"
    again = client_.post(f"/flows/{flow.pk}/pause/", follow=True)
    assert "Only a live flow" in text(again)
    client_.post(f"/flows/{flow.pk}/resume/")
    client_.post(f"/flows/{flow.pk}/archive/")
    flow.refresh_from_db()
    assert flow.status == "archived"


def test_a_viewer_reads_flows_but_does_not_change_them(member_client, workspace):
    flow = flow_create(workspace=workspace, name="Read me", actor=ACTOR,
                       entry={"type": "manual"}, steps=[{"id": "t", "type": "exit"}])  # fmt: skip
    viewer = member_client(Role.VIEWER)
    page = text(viewer.get(f"/flows/{flow.pk}/"))
    assert "Read me" in page and 'id="flow-lifecycle"' not in page
    assert viewer.post(f"/flows/{flow.pk}/publish/").status_code == 403
