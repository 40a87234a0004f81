"""Segments as experiment targets: a person's segments from stored membership, and the
OpenFeature Remote Evaluation Protocol driven by the OpenFeature SDK and its OFREP
provider against the live server."""

import pytest
from django.test import Client
from openfeature import api as openfeature
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import ErrorCode, Reason

from accounts.audit import Actor
from accounts.models import ApiKeyKind
from accounts.services import api_key_create
from people.models import Person
from people.services.people import person_upsert
from segments.models import Segment, SegmentKind
from segments.services import segment_create, static_members_change
from tests.factories import WorkspaceFactory

ACTOR = Actor(system="tests")


@pytest.fixture
def segments(workspace):
    for ext, city in (("ann", "London"), ("bob", "Paris")):
        person_upsert(workspace=workspace, external_id=ext, data={"city": city}, actor=ACTOR)
    londoners = segment_create(
        workspace=workspace, name="Londoners", kind=SegmentKind.REALTIME,
        rules={"attribute": "city", "op": "is", "value": "London"}, actor=ACTOR,
    )  # fmt: skip
    snapshot = segment_create(
        workspace=workspace, name="Parisians", kind=SegmentKind.SNAPSHOT,
        rules={"attribute": "city", "op": "is", "value": "Paris"}, actor=ACTOR,
    )  # fmt: skip
    beta = segment_create(
        workspace=workspace, name="Beta testers", kind=SegmentKind.STATIC, actor=ACTOR
    )
    static_members_change(
        segment=beta, people=Person.objects.filter(external_id="bob"), add=True, actor=ACTOR
    )
    return {"londoners": londoners, "snapshot": snapshot, "beta": beta}


def test_a_persons_segments_come_from_stored_membership(api_client, workspace, segments):
    ann = api_client.get("/api/v1/people/ann/segments").json()["items"]
    names = [s["name"] for s in ann]
    assert "Londoners" in names and "Everyone" in names
    assert "Parisians" not in names  # a snapshot is not stored
    assert "Beta testers" not in names
    londoners = next(s for s in ann if s["name"] == "Londoners")
    assert londoners["kind"] == "realtime" and londoners["entered_at"]
    bob = [s["name"] for s in api_client.get("/api/v1/people/bob/segments").json()["items"]]
    assert "Beta testers" in bob and "Londoners" not in bob
    assert api_client.get("/api/v1/people/nobody/segments").status_code == 404


def test_another_workspaces_person_is_not_found(api_client, segments):
    other = WorkspaceFactory()
    person_upsert(workspace=other, external_id="zed", data={}, actor=ACTOR)
    assert api_client.get("/api/v1/people/zed/segments").status_code == 404


@pytest.fixture
def client_for(live_server, workspace):
    """An OpenFeature client on Herald's OFREP endpoint with a read-only key."""
    _key, raw = api_key_create(workspace=workspace, name="flags", kind=ApiKeyKind.READ, actor=ACTOR)
    provider = OFREPProvider(
        live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {raw}"}
    )
    openfeature.set_provider(provider)
    yield openfeature.get_client()
    openfeature.clear_providers()


@pytest.mark.django_db(transaction=True)
def test_the_openfeature_sdk_scopes_a_flag_to_a_segment(client_for, segments, workspace):
    londoners, beta = segments["londoners"], segments["beta"]
    ann, bob = EvaluationContext(targeting_key="ann"), EvaluationContext(targeting_key="bob")
    details = client_for.get_boolean_details(f"segment-{londoners.pk}", False, ann)
    assert (details.value, details.reason, details.variant) == (True, Reason.TARGETING_MATCH, "in")
    details = client_for.get_boolean_details(f"segment-{londoners.pk}", True, bob)
    assert (details.value, details.reason, details.variant) == (False, Reason.DEFAULT, "out")
    assert client_for.get_boolean_value(f"segment-{beta.pk}", False, bob) is True
    # someone Herald does not know is in no segment
    assert (
        client_for.get_boolean_value(f"segment-{beta.pk}", True, EvaluationContext("new")) is False
    )
    # a snapshot, an unknown key and another workspace's segment are not flags
    other = WorkspaceFactory()
    foreign = Segment.objects.filter(workspace=other, kind=SegmentKind.EVERYONE).first()
    for key in (f"segment-{segments['snapshot'].pk}", "segment-999999", "dark-mode",
                f"segment-{foreign.pk}"):  # fmt: skip
        details = client_for.get_boolean_details(key, True, ann)
        assert details.value is True and details.error_code == ErrorCode.FLAG_NOT_FOUND, key
    # no targeting key: the protocol's error, the default served
    details = client_for.get_boolean_details(f"segment-{beta.pk}", False, EvaluationContext())
    assert details.error_code == ErrorCode.TARGETING_KEY_MISSING


def test_bulk_evaluation_and_keys(client, api_key, workspace, segments):
    body = {"context": {"targetingKey": "ann", "plan": "pro"}}
    response = client.post(
        "/ofrep/v1/evaluate/flags", body, content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )  # fmt: skip
    assert response.status_code == 200
    flags = {f["key"]: f["value"] for f in response.json()["flags"]}
    assert flags[f"segment-{segments['londoners'].pk}"] is True
    assert flags[f"segment-{segments['beta'].pk}"] is False
    assert f"segment-{segments['snapshot'].pk}" not in flags
    wrong = Client().post(
        f"/ofrep/v1/evaluate/flags/segment-{segments['beta'].pk}", body,
        content_type="application/json", headers={"Authorization": "Bearer hk_nope"},
    )  # fmt: skip
    assert wrong.status_code == 401


def test_bulk_evaluation_reads_the_memberships_once_whatever_the_number_of_flags(
    client, api_key, workspace, segments
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                "/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "bob"}},
                content_type="application/json", headers={"Authorization": f"Bearer {api_key}"},
            )  # fmt: skip
        assert response.status_code == 200
        return len(captured), response.json()["flags"]

    before, flags = queries()
    for i in range(5):
        segment_create(
            workspace=workspace, name=f"Static {i}", kind=SegmentKind.STATIC, actor=ACTOR
        )
    after, more = queries()
    # (the first request also notes the key's last use: at most one query more)
    assert len(more) == len(flags) + 5 and after <= before
    assert {f["key"]: f["value"] for f in more}[f"segment-{segments['beta'].pk}"] is True
