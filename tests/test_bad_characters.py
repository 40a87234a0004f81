"""Characters PostgreSQL cannot store or compare (NUL, lone surrogates) in a request's path
or query string are refused before any view runs: a 400 page for the UI, the API's 422
error body naming the parameter under /api/ (shared/API.md)."""

import json

import pytest
from django.http import HttpResponse, QueryDict
from django.test import RequestFactory

from accounts.middleware import BadCharacterMiddleware
from tests.factories import PersonFactory

NOT_ALLOWED = "The address contains a character that is not allowed"


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


@pytest.mark.parametrize(
    "url",
    ["/people/", "/tags/", "/dnc/", "/audiences/"],
)
def test_a_nul_in_a_search_is_a_400_page_not_a_500(ops_client, workspace, url):
    response = ops_client.get(url, {"q": "a\x00b"})
    assert response.status_code == 400
    assert NOT_ALLOWED in response.text
    assert response["Content-Type"].startswith("text/html")


def test_a_percent_encoded_nul_in_the_query_string_or_its_names_is_refused(ops_client, workspace):
    assert ops_client.get("/people/?q=a%00b").status_code == 400
    assert ops_client.get("/people/?city=x&q%00=b").status_code == 400
    # ... an encoded "%00" is only text
    assert ops_client.get("/people/?q=a%2500b").status_code == 200


def test_a_nul_in_the_path_is_a_400_page(ops_client, workspace):
    person = PersonFactory(workspace=workspace)
    event = f"/people/{person.pk}/?event=App%00Launch"
    assert ops_client.get(event).status_code == 400
    response = ops_client.get("/people/a%00b/")
    assert response.status_code == 400 and NOT_ALLOWED in response.text


def test_the_api_answers_422_naming_the_parameter(api_client, workspace):
    response = api_client.get("/api/v1/people", {"q": "a\x00b"})
    assert response.status_code == 422
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert "q" in body["detail"]
    assert body["errors"] == [{"loc": ["query", "q"], "msg": body["errors"][0]["msg"]}]
    assert "not allowed" in body["errors"][0]["msg"]
    response = api_client.get("/api/v1/dnc", {"channel": "email", "q": "x\x00"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "q"]


def test_the_api_answers_422_for_a_nul_in_the_path(api_client, workspace):
    response = api_client.get("/api/v1/people/a%00b")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path"]
    response = api_client.delete("/api/v1/dnc/push/tok%00en")
    assert response.status_code == 422


def test_a_clean_request_goes_through(ops_client, api_client, workspace):
    assert ops_client.get("/people/", {"q": "ada"}).status_code == 200
    assert api_client.get("/api/v1/people", {"q": "ada"}).status_code == 200


def _through_middleware(path, params=None):
    # The servers decode addresses without producing surrogates, but an ASGI server may
    # hand any str to Django: set them on the request as it would arrive.
    request = RequestFactory().get("/")
    request.path = request.path_info = path
    if params is not None:
        request.GET = QueryDict(mutable=True)
        for key, value in params.items():
            request.GET[key] = value
    return BadCharacterMiddleware(lambda r: HttpResponse("view"))(request)


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/api/v1/people", {"q": "a\ud800b"}, ["query", "q"]),
        ("/api/v1/people", {"\udfffq": "x"}, ["query", "\ufffdq"]),
        ("/api/v1/people/\udc80", None, ["path"]),
    ],
)
def test_lone_surrogates_are_refused_like_nul(path, params, loc):
    response = _through_middleware(path, params)
    assert response.status_code == 422
    assert json.loads(response.content)["errors"][0]["loc"] == loc


def test_lone_surrogates_in_a_page_address_are_a_400():
    response = _through_middleware("/people/", {"q": "\ud83d"})
    assert response.status_code == 400
    assert NOT_ALLOWED in response.content.decode()
    assert _through_middleware("/people/", {"q": "\U0001f600 ok"}).content == b"view"
