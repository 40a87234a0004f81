"""The API base: bearer keys, the error format, cursor pagination, OpenAPI."""

import pytest

from accounts.audit import Actor
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.factories import PersonFactory


def test_workspace_endpoint_answers_for_the_keys_workspace(api_client, workspace):
    workspace.time_zone = "Europe/Paris"
    workspace.save()
    response = api_client.get("/api/v1/workspace")
    assert response.status_code == 200
    assert response.json() == {"name": "Acme", "slug": "acme", "time_zone": "Europe/Paris"}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer hk_deadbeef_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer "],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_missing_or_wrong_key_is_401_with_a_detail(client, db, header):
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/workspace", headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]


def test_a_revoked_key_is_401_at_once(client, workspace):
    key, raw = api_key_create(workspace=workspace, name="soon revoked", actor=Actor(system="tests"))
    auth = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/workspace", headers=auth).status_code == 200
    api_key_revoke(api_key=key, actor=Actor(system="tests"))
    assert client.get("/api/v1/workspace", headers=auth).status_code == 401


def test_a_key_of_another_workspace_sees_only_that_workspace(client, workspace, other_workspace):
    PersonFactory(workspace=workspace, external_id="mine")
    _, raw = api_key_create(workspace=other_workspace, name="theirs", actor=Actor(system="tests"))
    auth = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/workspace", headers=auth).json()["slug"] == "other-co"
    assert client.get("/api/v1/people/mine", headers=auth).status_code == 404
    assert client.get("/api/v1/people", headers=auth).json()["items"] == []


def test_key_use_is_recorded(api_client, workspace):
    api_client.get("/api/v1/workspace")
    assert ApiKey.objects.for_workspace(workspace).get().last_used_at is not None


def test_cursor_pagination_walks_every_row_once(api_client, workspace):
    made = {PersonFactory(workspace=workspace).external_id for _ in range(7)}
    PersonFactory.create_batch(3)  # other workspaces
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/people?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = api_client.get(url).json()
        seen += [p["external_id"] for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7 and set(seen) == made


def test_default_limit_is_50_and_max_is_1000(api_client, workspace):
    PersonFactory.create_batch(51, workspace=workspace)
    body = api_client.get("/api/v1/people").json()
    assert len(body["items"]) == 50 and body["next_cursor"]
    too_many = api_client.get("/api/v1/people?limit=1001")
    assert too_many.status_code == 422
    error = too_many.json()
    assert error["errors"][0]["loc"] == ["query", "limit"]
    assert error["detail"].startswith("The request is invalid")


def test_a_garbled_cursor_is_422_not_500(api_client, workspace):
    response = api_client.get("/api/v1/people?cursor=%%%garbage")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    "values", [["abc"], [None], [{}], [[1]], [True], [2**70], [1, 2]], ids=repr
)
def test_a_well_formed_cursor_holding_wrong_values_is_422_not_500(api_client, workspace, values):
    from config.api import encode_cursor

    PersonFactory(workspace=workspace, external_id="p1")
    for url in ["/api/v1/people", "/api/v1/people/p1/events"]:
        response = api_client.get(url, {"cursor": encode_cursor(values)})
        assert response.status_code == 422, (url, response.content)
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]


def test_unknown_object_is_404_in_the_error_format(api_client, workspace):
    response = api_client.get("/api/v1/people/nobody")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


def test_openapi_document_and_docs_are_served(client, db):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    doc = spec.json()
    assert "/api/v1/workspace" in doc["paths"]
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"
    assert client.get("/api/v1/docs").status_code == 200


def test_rate_limit_answers_429_with_retry_after(api_client, settings):
    # the counter is the key's own (a new key each test), so nothing needs clearing
    settings.API_RATE_LIMIT = "2/m"
    codes = [api_client.get("/api/v1/workspace").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    limited = api_client.get("/api/v1/workspace")
    assert int(limited.headers["Retry-After"]) >= 1
    assert "Too many requests" in limited.json()["detail"]
