"""The API's defences: the per-key rate limit and the failed-key limit per client address
(both atomic counters in Redis), read-only keys, hash-key rotation, hostile cursors."""

import base64
import threading
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.db import connections
from django.test import Client

from accounts.audit import Actor
from accounts.models import ApiKey
from accounts.services import api_key_create

WRONG = {"Authorization": "Bearer hk_deadbeef_not-a-real-key"}


@pytest.fixture(autouse=True)
def fresh_limits(settings):
    """No counters left over from another test (rate limits live in the real Redis)."""
    url = settings.REDIS_URL  # taken now: a test may point settings.REDIS_URL elsewhere

    def clear():
        client = redis.Redis.from_url(url)
        for pattern in ("herald:ratelimit:*", "herald:*throttle*"):
            keys = list(client.scan_iter(match=pattern))
            if keys:
                client.delete(*keys)
        client.close()

    clear()
    yield
    clear()


def _read_key(workspace):
    return api_key_create(
        workspace=workspace, name="dashboard", kind="read", actor=Actor(system="tests")
    )[1]


# --- Per-key rate limit -------------------------------------------------------------------


def test_the_rate_limit_is_one_atomic_counter_under_concurrent_calls(transactional_db, settings):
    """Twenty-four concurrent calls under a limit of ten: exactly ten are served."""
    from tests.factories import WorkspaceFactory

    settings.API_RATE_LIMIT = "10/m"
    _, raw = api_key_create(workspace=WorkspaceFactory(), name="busy", actor=Actor(system="tests"))
    start = threading.Barrier(24)
    codes = []

    def call():
        try:
            start.wait()
            response = Client().get("/api/v1/workspace", headers={"Authorization": f"Bearer {raw}"})
            codes.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 10 + [429] * 14


def test_over_the_rate_the_answer_is_429_with_retry_after_and_the_error_body(api_client, settings):
    settings.API_RATE_LIMIT = "3/h"
    assert [api_client.get("/api/v1/workspace").status_code for _ in range(3)] == [200] * 3
    limited = api_client.get("/api/v1/workspace")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 3600
    assert limited.json()["detail"].startswith("Too many requests")


def test_each_key_has_its_own_budget(api_client, client, workspace, settings):
    settings.API_RATE_LIMIT = "1/m"
    assert api_client.get("/api/v1/workspace").status_code == 200
    assert api_client.get("/api/v1/workspace").status_code == 429
    _, other = api_key_create(workspace=workspace, name="second", actor=Actor(system="tests"))
    fresh = Client().get("/api/v1/workspace", headers={"Authorization": f"Bearer {other}"})
    assert fresh.status_code == 200


def test_with_redis_down_requests_are_served_and_a_warning_is_logged(
    api_client, settings, caplog, monkeypatch
):
    import config.api

    monkeypatch.setattr(config.api, "_redis_warned_at", float("-inf"), raising=False)
    settings.API_RATE_LIMIT = "1/m"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with caplog.at_level("WARNING"):
        codes = [api_client.get("/api/v1/workspace").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert any("rate limit" in r.getMessage().lower() for r in caplog.records), caplog.text


# --- Failed keys per client address -------------------------------------------------------


def test_guessing_keys_from_one_address_is_answered_429(client, workspace, settings):
    settings.API_AUTH_FAILURE_LIMIT = "3/m"
    codes = [client.get("/api/v1/workspace", headers=WRONG).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = client.get("/api/v1/workspace", headers=WRONG)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["detail"].startswith("Too many")
    # While blocked, even a right key from that address is not checked (or a guess that
    # happens to be right would be confirmed).
    _, raw = api_key_create(workspace=workspace, name="real", actor=Actor(system="tests"))
    right = client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {raw}"})
    assert right.status_code == 429
    # Another address is not affected.
    elsewhere = client.get("/api/v1/workspace", headers=WRONG, REMOTE_ADDR="192.0.2.77")
    assert elsewhere.status_code == 401


def test_good_keys_do_not_use_up_the_failure_budget(api_client, settings):
    settings.API_AUTH_FAILURE_LIMIT = "2/m"
    assert {api_client.get("/api/v1/workspace").status_code for _ in range(5)} == {200}


def test_a_forged_x_forwarded_for_does_not_escape_the_failure_limit(client, db, settings):
    """Without trusted proxies (the default), X-Forwarded-For is the client's own claim."""
    assert settings.TRUSTED_PROXY_COUNT == 0
    settings.API_AUTH_FAILURE_LIMIT = "3/m"
    codes = [
        client.get(
            "/api/v1/workspace", headers={**WRONG, "X-Forwarded-For": f"198.51.100.{i}"}
        ).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_failure_budget(client, db, settings):
    from config.env import trusted_proxy_settings

    for name, value in trusted_proxy_settings(1).items():
        setattr(settings, name, value)
    settings.API_AUTH_FAILURE_LIMIT = "2/m"
    via_proxy = {"REMOTE_ADDR": "10.0.0.2"}

    def guess(client_ip):
        headers = {**WRONG, "X-Forwarded-For": client_ip}
        return client.get("/api/v1/workspace", headers=headers, **via_proxy).status_code

    assert [guess("198.51.100.1") for _ in range(3)] == [401, 401, 429]
    assert guess("198.51.100.2") == 401  # another client behind the same proxy
    # a client prepending a forged address is still known by what the proxy appended
    assert guess("203.0.113.9, 198.51.100.1") == 429


def test_an_ipv6_client_counts_by_its_64_block(client, db, settings):
    settings.API_AUTH_FAILURE_LIMIT = "2/m"

    def guess(address):
        return client.get("/api/v1/workspace", headers=WRONG, REMOTE_ADDR=address).status_code

    assert [guess("2001:db8:1:2::1"), guess("2001:db8:1:2::abcd")] == [401, 401]
    assert guess("2001:db8:1:2:ffff::9") == 429  # same /64
    assert guess("2001:db8:1:3::1") == 401  # the next /64


# --- Read-only keys -----------------------------------------------------------------------


def _openapi_operations(client):
    doc = client.get("/api/v1/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method in operations:
            url = path
            for part in path.split("/"):
                if part.startswith("{"):
                    url = url.replace(part, "1")
            yield method.upper(), url


def test_a_read_only_key_gets_403_on_every_write_of_the_api(client, workspace):
    auth = {"Authorization": f"Bearer {_read_key(workspace)}"}
    operations = list(_openapi_operations(client))
    writes = [(m, u) for m, u in operations if m != "GET"]
    assert len(writes) >= 10  # the schema was walked
    for method, url in operations:
        response = client.generic(method, url, b"{}", "application/json", headers=auth)
        if method == "GET":
            assert response.status_code != 403, (method, url, response.content)
        else:
            assert response.status_code == 403, (method, url, response.content)
            assert "read-only" in response.json()["detail"], (method, url)


def test_a_read_only_key_reads(client, workspace):
    auth = {"Authorization": f"Bearer {_read_key(workspace)}"}
    assert client.get("/api/v1/workspace", headers=auth).json()["slug"] == "acme"
    assert client.get("/api/v1/people", headers=auth).status_code == 200


def test_a_full_key_writes(api_client, workspace):
    response = api_client.post("/api/v1/tags", {"name": "vip"}, content_type="application/json")
    assert response.status_code in (200, 201), response.content


def test_existing_and_new_keys_are_full_by_default(workspace):
    key, _ = api_key_create(workspace=workspace, name="default", actor=Actor(system="tests"))
    assert key.kind == "full"


def test_create_api_key_command_makes_a_read_only_key(client, workspace):
    out = StringIO()
    call_command("create_api_key", "--workspace", "acme", "--scope", "read", stdout=out)
    raw = out.getvalue().strip()
    assert ApiKey.objects.for_workspace(workspace).get().kind == "read"
    auth = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/workspace", headers=auth).status_code == 200
    refused = client.post("/api/v1/tags", {"name": "x"}, "application/json", headers=auth)
    assert refused.status_code == 403


# --- Hash keys ----------------------------------------------------------------------------

KEY_A = "a" * 20 + "-hash-key-A-for-tests-only-0123456789"
KEY_B = "b" * 20 + "-hash-key-B-for-tests-only-0123456789"


def _works(client, raw):
    return client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {raw}"}).status_code


def test_keys_survive_a_secret_key_rotation(client, workspace, settings):
    settings.API_KEY_HASH_KEYS = [KEY_A]
    _, raw = api_key_create(workspace=workspace, name="long-lived", actor=Actor(system="tests"))
    settings.SECRET_KEY = "rotated-" + "z" * 60
    assert _works(client, raw) == 200


def test_a_key_made_under_the_old_hash_key_works_while_it_is_listed(client, workspace, settings):
    settings.API_KEY_HASH_KEYS = [KEY_A]
    _, raw = api_key_create(
        workspace=workspace, name="before rotation", actor=Actor(system="tests")
    )
    settings.API_KEY_HASH_KEYS = [KEY_B, KEY_A]
    assert _works(client, raw) == 200
    # used once under the new first key, it is re-hashed with it: A can then be dropped
    settings.API_KEY_HASH_KEYS = [KEY_B]
    assert _works(client, raw) == 200


def test_a_key_is_refused_once_its_hash_key_is_dropped(client, workspace, settings):
    settings.API_KEY_HASH_KEYS = [KEY_A]
    _, raw = api_key_create(
        workspace=workspace, name="never used after rotation", actor=Actor(system="tests")
    )
    settings.API_KEY_HASH_KEYS = [KEY_B]
    assert _works(client, raw) == 401


def test_new_keys_are_hashed_with_the_first_hash_key(client, workspace, settings):
    settings.API_KEY_HASH_KEYS = [KEY_B, KEY_A]
    _, raw = api_key_create(workspace=workspace, name="new", actor=Actor(system="tests"))
    settings.API_KEY_HASH_KEYS = [KEY_B]
    assert _works(client, raw) == 200


def test_by_default_the_hash_keys_are_the_secret_key_and_its_fallbacks(settings):
    # The test run sets no API_KEY_HASH_KEYS: keys made before the setting existed (hashed
    # with SECRET_KEY) keep working.
    assert [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS] == settings.API_KEY_HASH_KEYS


# --- Cursors ------------------------------------------------------------------------------


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "1e999", "NaN", "1e300", "-1e300"])
def test_a_cursor_holding_a_non_finite_or_huge_number_is_422_not_500(api_client, workspace, number):
    from tests.factories import PersonFactory

    PersonFactory(workspace=workspace, external_id="p1")
    cursors = {
        "/api/v1/people": f"[{number}]",  # ordered by id
        "/api/v1/people/p1/events": f'["2026-01-01T00:00:00+00:00", {number}]',
    }
    for url, text in cursors.items():
        response = api_client.get(url, {"cursor": _raw_cursor(text)})
        assert response.status_code == 422, (url, text, response.content)
        assert response.json()["errors"][0]["loc"] == ["query", "cursor"]
