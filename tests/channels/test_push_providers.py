"""Push providers per platform through the API, each tried with "send a test message"
against the local fakes of its real service (tests/channels/push_fakes.py): FCM for
Android, Web Push for browsers; a kind that cannot reach a platform is a 422 naming it,
and a dead token is answered suppress."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.transports.push_webpush import vapid_public_key
from tests.channels.push_fakes import FakeFcm, FakePushService, service_account, threaded_httpserver


@pytest.fixture
def server():
    with threaded_httpserver() as server:
        yield server


def _put(api_client, platform, body):
    return api_client.put(f"/api/v1/channels/push/provider/{platform}", body,
                          content_type="application/json")  # fmt: skip


def _test(api_client, platform, to):
    return api_client.post("/api/v1/channels/push/provider/test",
                           {"to": to, "platform": platform},
                           content_type="application/json").json()  # fmt: skip


def test_fcm_for_android_sends_the_test_and_a_dead_token_is_suppress(api_client, server):
    info, public_key = service_account(server.url_for("/token"), "herald-test")
    fcm = FakeFcm(server, client_email=info["client_email"], public_key=public_key)
    put = _put(api_client, "android", {
        "kind": "fcm", "settings": {"base_url": fcm.base_url, "token_url": fcm.token_url},
        "secrets": {"service_account_json": json.dumps(info)},
    })  # fmt: skip
    assert put.status_code == 200, put.content
    got = put.json()
    assert got["settings"]["project_id"] == "herald-test"  # read from the key
    assert got["secrets_set"] == ["service_account_json"] and "PRIVATE KEY" not in str(got)
    tried = _test(api_client, "android", "device-token-1")
    assert tried["sent"] is True, tried
    ((_, message),) = fcm.sent
    assert message["token"] == "device-token-1"
    assert message["notification"]["title"] == "Herald test"
    dead = _test(api_client, "android", "dead-token")
    assert (dead["sent"], dead["error_kind"]) == (False, "suppress")


def test_web_push_sends_the_test_the_browser_can_read(api_client, server):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    service = FakePushService(server, application_server_key=vapid_public_key(pem))
    browser = service.subscribe("alice")
    put = _put(api_client, "web", {"kind": "webpush",
                                   "settings": {"vapid_subject": "mailto:ops@acme.test"},
                                   "secrets": {"vapid_private_key": pem}})  # fmt: skip
    assert put.status_code == 200, put.content
    assert put.json()["settings"]["vapid_public_key"] == vapid_public_key(pem)
    tried = _test(api_client, "web", browser.address)
    assert tried["sent"] is True, tried
    (delivered,) = service.delivered
    assert delivered["payload"]["title"] == "Herald test"


def test_a_kind_that_cannot_reach_the_platform_names_the_kind(api_client):
    answer = _put(api_client, "android", {"kind": "webpush", "settings": {}, "secrets": {}})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == ["body", "kind"]
    bad = _put(
        api_client,
        "android",
        {"kind": "fcm", "settings": {}, "secrets": {"service_account_json": "{not json"}},
    )
    assert bad.status_code == 422
    assert ["body", "service_account_json"] in [e["loc"] for e in bad.json()["errors"]]
