"""The Web Push transport against a local push service (tests/channels/push_fakes.py)
that verifies the VAPID authorization and decrypts each message with the keys the
subscribing browser made, so what the tests read is what the browser's service worker
would: the payload each option maps to, the headers, the push services' refusals, and
subscriptions that are not subscriptions or point somewhere Herald may not connect."""

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from channels.transports.base import PERMANENT, SUPPRESS, TEMPORARY, OutboundMessage, SendResult
from channels.transports.push_webpush import WebPushTransport, vapid_public_key
from tests.channels.conftest import free_port
from tests.channels.push_fakes import (
    FakeBrowser,
    FakePushService,
    b64url,
    half_answer_server,
    silent_server,
    threaded_httpserver,
)

SUBJECT = "mailto:push-admin@herald.test"


@pytest.fixture(scope="module")
def server():
    with threaded_httpserver() as server:
        yield server


@pytest.fixture(scope="module")
def vapid():
    """The workspace's VAPID key: as PEM, and as the base64url private number."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    return pem, raw


@pytest.fixture
def service(server, vapid):
    server.clear()
    return FakePushService(server, application_server_key=vapid_public_key(vapid[0]))


def transport(vapid, **kwargs):
    settings = {"vapid_subject": SUBJECT, "vapid_private_key": vapid[0]} | kwargs
    return WebPushTransport(**settings)


def push(browser_or_address, **kwargs):
    address = getattr(browser_or_address, "address", browser_or_address)
    return OutboundMessage(channel="push", address=address, title="Spring sale",
                           body="Everything is 20% off", **kwargs)  # fmt: skip


def test_the_browser_decrypts_every_option(service, vapid):
    browser = service.subscribe("alice")
    message = push(
        browser, reference="delivery-42", idempotency_key="delivery-42",
        data={
            "image": "https://cdn.herald.test/sale.png",
            "deep_link": "https://shop.herald.test/sale",
            "buttons": [{"id": "shop", "label": "Shop now", "url": "https://shop.herald.test"},
                        {"id": "later", "label": "Later"}],
            "android": {"priority": "high"},
            "ttl": 3600,
            "custom": {"coupon": "SPRING20"},
        },
    )  # fmt: skip
    with transport(vapid) as web:
        result = web.send(message)
    (delivered,) = service.delivered
    assert isinstance(result, SendResult)
    assert result.provider_message_id == f"{service.origin}/m/1"
    assert delivered["payload"] == {
        "title": "Spring sale", "body": "Everything is 20% off",
        "image": "https://cdn.herald.test/sale.png", "url": "https://shop.herald.test/sale",
        "actions": [{"action": "shop", "title": "Shop now", "url": "https://shop.herald.test"},
                    {"action": "later", "title": "Later"}],
        "data": {"coupon": "SPRING20", "herald_ref": "delivery-42"},
    }  # fmt: skip
    headers = delivered["headers"]
    assert (headers["Ttl"], headers["Urgency"], headers["Topic"]) == ("3600", "high", "delivery-42")
    assert headers["Content-Encoding"] == "aes128gcm"
    claims = delivered["claims"]
    assert (claims["aud"], claims["sub"]) == (service.origin, SUBJECT)
    assert abs(claims["exp"] - (time.time() + 12 * 3600)) < 60


def test_a_plain_message_is_kept_four_weeks_at_normal_urgency(service, vapid):
    browser = service.subscribe("bob")
    with transport(vapid) as web:
        web.send(push(browser, idempotency_key="not a topic: spaces and far too long for one"))
    (delivered,) = service.delivered
    assert delivered["payload"] == {"title": "Spring sale", "body": "Everything is 20% off"}
    assert delivered["headers"]["Ttl"] == str(28 * 24 * 3600)
    assert delivered["headers"]["Urgency"] == "normal" and "Topic" not in delivered["headers"]


def test_a_key_in_its_base64url_form_signs_the_same(service, vapid):
    browser = service.subscribe("carol")
    with transport(vapid, vapid_private_key=vapid[1]) as web:
        assert web.public_key == vapid_public_key(vapid[0])
        assert isinstance(web.send(push(browser)), SendResult)


def test_many_browsers_share_one_vapid_token_per_push_service(service, vapid):
    browsers = [service.subscribe(f"fan-{i}") for i in range(12)]
    with transport(vapid, concurrency=4) as web:
        outcomes = web.send_many([push(b) for b in browsers])
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert sorted(d["id"] for d in service.delivered) == sorted(f"fan-{i}" for i in range(12))
    assert len({d["jwt"] for d in service.delivered}) == 1


def test_the_vapid_token_is_renewed_with_an_hour_left(server, vapid):
    offset = {"hours": 0}
    clock = lambda: time.time() + offset["hours"] * 3600  # noqa: E731
    server.clear()
    service = FakePushService(server, application_server_key=vapid_public_key(vapid[0]),
                              clock=clock)  # fmt: skip
    browser = service.subscribe("henry")
    with transport(vapid, clock=clock) as web:
        web.send(push(browser))
        offset["hours"] = 10.5  # 1.5 hours left: kept
        web.send(push(browser))
        offset["hours"] = 11.5  # half an hour left: renewed
        web.send(push(browser))
    first, kept, renewed = (d["jwt"] for d in service.delivered)
    assert first == kept != renewed


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("gone", SUPPRESS, 410),
        ("missing", SUPPRESS, 404),
        ("busy", TEMPORARY, 429),
        ("down", TEMPORARY, 503),
        ("html", TEMPORARY, 502),
        ("bad", PERMANENT, 400),
        ("big", PERMANENT, 413),
    ],
)
def test_each_push_service_refusal_is_classified(service, vapid, name, kind, code):
    browser = service.subscribe(name)
    with transport(vapid) as web:
        (outcome,) = web.send_many([push(browser)])
    assert (outcome.kind, outcome.code) == (kind, code)


def test_one_gone_subscription_fails_only_itself(service, vapid):
    live, gone = service.subscribe("live"), service.subscribe("gone")
    with transport(vapid) as web:
        outcomes = web.send_many([push(gone), push(live)])
    assert outcomes[0].suppress and "remove it" in outcomes[0].message
    assert isinstance(outcomes[1], SendResult)


def test_a_subscription_made_with_another_key_is_refused_as_permanent(service):
    browser = service.subscribe("dave")
    other = ec.generate_private_key(ec.SECP256R1())
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    with WebPushTransport(vapid_subject=SUBJECT, vapid_private_key=other_pem) as web:
        (outcome,) = web.send_many([push(browser)])
    assert (outcome.kind, outcome.code) == (PERMANENT, 403)
    assert "another VAPID key" in outcome.message and service.delivered == []


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("not json", "not a push subscription's JSON"),
        ('["https://push.test/x"]', "JSON object"),
        ('{"endpoint": "ftp://push.test/x", "keys": {}}', "no endpoint URL"),
        ('{"endpoint": "https://user:pw@push.test/x", "keys": {}}', "no endpoint URL"),
        ('{"endpoint": "https://push.test:99999/x", "keys": {}}', "no endpoint URL"),
        ('{"endpoint": "https://push.test/x"}', "no keys"),
        ('{"endpoint": "https://push.test/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
         "p256dh"),
    ],
)  # fmt: skip
def test_an_address_that_is_not_a_subscription_is_permanent(service, vapid, address, said):
    with transport(vapid) as web:
        (outcome,) = web.send_many([push(address)])
    assert (outcome.kind, outcome.code) == (PERMANENT, "invalid_subscription")
    assert said in outcome.message and service.requests == 0


def test_a_short_auth_secret_is_refused(service, vapid):
    browser = service.subscribe("eve")
    browser.subscription["keys"]["auth"] = b64url(b"short")
    with transport(vapid) as web:
        (outcome,) = web.send_many([push(browser)])
    assert outcome.kind == PERMANENT and "auth secret" in outcome.message


def test_a_message_too_large_for_web_push_is_not_sent(service, vapid):
    browser = service.subscribe("frank")
    with transport(vapid) as web:
        (outcome,) = web.send_many([push(browser, data={"custom": {"blob": "x" * 5000}})])
    assert (outcome.kind, outcome.code) == (PERMANENT, 413) and service.requests == 0


def test_an_endpoint_at_a_private_address_is_refused_unless_allowed(service, vapid):
    """Endpoints come from browsers: one pointing inside the network is not fetched."""
    browser = service.subscribe("mallory")
    with transport(vapid, allow_private=False) as web:
        (outcome,) = web.send_many([push(browser)])
    assert (outcome.kind, outcome.code) == (PERMANENT, "blocked_host")
    assert service.requests == 0


def test_a_timeout_a_cut_answer_and_no_server_are_temporary(service, vapid):
    with half_answer_server() as url, transport(vapid, timeout=0.5) as web:
        (cut,) = web.send_many([push(FakeBrowser(f"{url}/push/x"))])
    assert cut.kind == TEMPORARY and "Could not reach the push service" in cut.message
    nowhere = FakeBrowser(f"http://127.0.0.1:{free_port()}/push/x")
    with transport(vapid) as web:
        (refused,) = web.send_many([push(nowhere)])
    assert refused.kind == TEMPORARY
    with silent_server() as url, transport(vapid, timeout=0.3) as web:
        (slow,) = web.send_many([push(FakeBrowser(f"{url}/push/x"))])
    assert slow.kind == TEMPORARY and "in time" in slow.message


def test_the_subscription_json_browsers_produce_is_accepted_as_is(service, vapid):
    browser = service.subscribe("grace")
    address = json.dumps({**browser.subscription, "expirationTime": 1_800_000_000_000})
    with transport(vapid) as web:
        assert isinstance(web.send(push(address)), SendResult)
