"""Text PostgreSQL cannot store (NUL, lone surrogates) is refused with a 422 naming the
field, in one place for every operation (config.api.StorableTextParser), and anything
unexpected answers the API's JSON error body with a request id, never an HTML page."""

import json
import logging

import pytest

from config.api_urls import api

BAD = ["a\x00b", "x\ud800y", "\udfff"]


def raw_post(client, url, text, method="post"):
    """A JSON body as a client sends it: json.dumps writes the escapes (\\u0000, \\ud800)."""
    return getattr(client, method)(url, data=text, content_type="application/json")


CASES = [
    ("post", "/api/v1/tags", lambda b: {"name": b}, ["body", "name"]),
    ("post", "/api/v1/tags/VIP/people", lambda b: {"people": ["ok", b]}, ["body", "people", "1"]),
    ("post", "/api/v1/audiences/1/members", lambda b: {"people": [b]}, ["body", "people", "0"]),
    ("put", "/api/v1/people/p1", lambda b: {"attributes": {"k": b}}, ["body", "attributes", "k"]),
    ("post", "/api/v1/events", lambda b: {"events": [{"person": "p", "name": b}]},
     ["body", "events", "0", "name"]),
    ("post", "/api/v1/segments/preview", lambda b: {"rules": {"tag": b, "op": "has"}},
     ["body", "rules", "tag"]),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("method", "url", "body", "loc"), CASES)
def test_unstorable_text_anywhere_in_a_body_is_a_422_naming_it(
    api_client, method, url, body, loc, bad
):
    response = raw_post(api_client, url, json.dumps(body(bad)), method)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["loc"] == loc
    assert "NUL" in response.json()["errors"][0]["msg"]


def test_an_unstorable_key_is_refused_too(api_client):
    response = raw_post(
        api_client, "/api/v1/people/p1", json.dumps({"attributes": {"a\x00": 1}}), "put"
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "attributes"]


def test_a_body_that_is_not_an_object_is_a_422_not_every_default(api_client):
    response = raw_post(api_client, "/api/v1/people/p1", "[null, null]", "put")
    assert response.status_code == 422
    assert api_client.get("/api/v1/people/p1").status_code == 404


def test_a_misspelt_field_is_a_422_not_silently_dropped(api_client):
    response = raw_post(api_client, "/api/v1/people/p1", json.dumps({"fist_name": "Ana"}), "put")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "fist_name"]


def test_broken_multipart_is_a_422(api_client):
    response = api_client.post(
        "/api/v1/audiences/imports", data=b"--x\r\nnot a part", content_type="multipart/form-data"
    )
    assert response.status_code == 422 and "multipart" in response.json()["detail"]


def test_an_unknown_api_url_answers_json(api_client):
    response = api_client.get("/api/v1/segments/-3")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_a_server_error_answers_the_json_error_body_with_a_request_id(rf, caplog):
    request = rf.get("/api/v1/people")
    with caplog.at_level(logging.ERROR, logger="config.api"):
        response = api.on_exception(request, RuntimeError("kaboom"))
    assert response.status_code == 500
    body = json.loads(response.content)
    request_id = response["X-Request-ID"]
    assert request_id in body["detail"] and "kaboom" not in body["detail"]
    assert any(request_id in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "x\\uD800"}',  # an escape in capitals
        b'{"name": "x\xed\xa0\x80"}',  # a surrogate's UTF-8 bytes, which json lets through
        '{"name": "x\\u0000"}'.encode("utf-16"),  # UTF-16 text: NUL bytes everywhere
    ],
)
def test_every_spelling_of_unstorable_text_is_refused(api_client, body):
    response = api_client.post("/api/v1/tags", data=body, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["loc"] == ["body", "name"]
