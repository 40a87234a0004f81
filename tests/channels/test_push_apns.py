"""The APNs transport against a real HTTP/2 server over TLS (hypercorn with a trustme
certificate, tests/channels/push_fakes.py) that checks Apple's provider token and headers:
HTTP/2 on one connection for a batch, the token reused and made again after 40 minutes,
the payload each option maps to, Apple's reasons, and a server that is slow, resets an
answer, answers HTML, is untrusted or is not there."""

import jwt
import pytest

from channels.transports.base import PERMANENT, SUPPRESS, TEMPORARY, OutboundMessage, SendResult
from channels.transports.push_apns import ApnsTransport
from tests.channels.conftest import free_port
from tests.channels.push_fakes import (
    APNS_ERRORS,
    APNS_HTML,
    APNS_RESET,
    APNS_SLOW,
    FakeApns,
    HypercornTls,
    device,
    p8_key,
)

TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.herald.shop"


class Clock:
    """The time both the transport and the fake go by."""

    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def key():
    return p8_key()


@pytest.fixture(scope="module")
def apple(key, tmp_path_factory):
    clock = Clock()
    fake = FakeApns(public_key=key[1], team_id=TEAM, key_id=KEY_ID, topic=TOPIC, clock=clock)
    with HypercornTls(fake, tmp_path_factory.mktemp("apns")) as server:
        fake.server, fake.clock_ = server, clock
        yield fake


@pytest.fixture
def apns(apple):
    apple.reset()
    apple.clock_.now = 1_700_000_000.0
    return apple


def transport(apns, key, **kwargs):
    settings = {"team_id": TEAM, "key_id": KEY_ID, "topic": TOPIC, "p8_key": key[0],
                "environment": "sandbox", "base_url": apns.server.url,
                "verify": apns.server.ca_file, "clock": apns.clock_} | kwargs  # fmt: skip
    return ApnsTransport(**settings)


def push(token=device(1), body="Everything is 20% off", **kwargs):
    return OutboundMessage(channel="push", address=token, title="Spring sale", body=body, **kwargs)


def test_every_option_reaches_apple_as_its_payload_and_headers(apns, key):
    message = push(
        reference="delivery-42", idempotency_key="delivery-42-push",
        data={
            "image": "https://cdn.herald.test/sale.png",
            "deep_link": "herald://sale",
            "buttons": [{"id": "shop", "label": "Shop now", "url": "herald://shop"}],
            "ios": {"sound": "chime.caf", "badge": 0, "category": "SALE", "thread_id": "sales",
                    "interruption_level": "passive"},
            "ttl": 600,
            "custom": {"coupon": "SPRING20", "herald_ref": "spoofed"},
        },
    )  # fmt: skip
    with transport(apns, key) as apns_transport:
        result = apns_transport.send(message)
    (request,) = apns.requests
    assert isinstance(result, SendResult)
    assert result.provider_message_id == request["apns_id"] != ""
    assert request["http_version"] == "2" and request["token"] == device(1)
    assert request["payload"] == {
        "aps": {"alert": {"title": "Spring sale", "body": "Everything is 20% off"},
                "sound": "chime.caf", "badge": 0, "category": "SALE", "thread-id": "sales",
                "interruption-level": "passive", "mutable-content": 1},
        "coupon": "SPRING20", "herald_ref": "delivery-42", "deep_link": "herald://sale",
        "image": "https://cdn.herald.test/sale.png",
        "buttons": [{"id": "shop", "label": "Shop now", "url": "herald://shop"}],
    }  # fmt: skip
    headers = request["headers"]
    assert (headers["apns-topic"], headers["apns-push-type"]) == (TOPIC, "alert")
    assert headers["apns-priority"] == "5"  # passive: no need to wake the device
    assert headers["apns-expiration"] == str(1_700_000_000 + 600)
    assert headers["apns-collapse-id"] == "delivery-42-push"
    token = headers["authorization"].removeprefix("bearer ")
    assert jwt.get_unverified_header(token)["kid"] == KEY_ID
    assert jwt.decode(token, key[1], algorithms=["ES256"]) == {"iss": TEAM, "iat": 1_700_000_000}


def test_a_plain_message_is_urgent_and_kept_four_weeks(apns, key):
    with transport(apns, key) as apns_transport:
        apns_transport.send(push(idempotency_key="k" * 65))
    (request,) = apns.requests
    assert request["payload"] == {"aps": {"alert": {"title": "Spring sale",
                                                    "body": "Everything is 20% off"}}}  # fmt: skip
    assert request["headers"]["apns-priority"] == "10"
    assert request["headers"]["apns-expiration"] == str(1_700_000_000 + 28 * 24 * 3600)
    assert "apns-collapse-id" not in request["headers"]  # over Apple's 64 bytes


def test_a_batch_is_multiplexed_over_one_http2_connection_with_one_token(apns, key):
    with transport(apns, key, concurrency=4) as apns_transport:
        first = apns_transport.send_many([push(device(100 + i)) for i in range(20)])
        second = apns_transport.send_many([push(device(200 + i)) for i in range(5)])
    assert all(isinstance(o, SendResult) for o in first + second), [
        o for o in first + second if not isinstance(o, SendResult)
    ]
    assert len({o.provider_message_id for o in first + second}) == 25
    assert {r["http_version"] for r in apns.requests} == {"2"}
    assert len({r["client"] for r in apns.requests}) == 1  # one TLS connection for both batches
    assert len(apns.tokens) == 1


def test_the_provider_token_is_made_again_after_40_minutes(apns, key):
    with transport(apns, key) as apns_transport:
        apns_transport.send(push())
        apns.clock_.now += 39 * 60
        apns_transport.send(push())
        assert len(apns.tokens) == 1  # 39 minutes old: reused
        apns.clock_.now += 2 * 60
        apns_transport.send(push())
    assert len(apns.tokens) == 2
    assert (
        jwt.decode(apns.tokens[1], key[1], algorithms=["ES256"])["iat"] == 1_700_000_000 + 41 * 60
    )


def test_an_expired_provider_token_is_replaced_once_then_permanent(apns, key):
    apns.expire_first = 1
    with transport(apns, key) as apns_transport:
        assert isinstance(apns_transport.send(push()), SendResult)
        assert len(apns.tokens) == 2 and len(apns.requests) == 2
        apns.expire_all = True
        (outcome,) = apns_transport.send_many([push()])
    assert (outcome.kind, outcome.code) == (PERMANENT, "ExpiredProviderToken")
    assert "clock" in outcome.message
    assert len(apns.requests) == 4 and len(apns.tokens) == 3  # one more token, one retry


def test_a_key_apple_does_not_know_is_permanent_without_retrying(apns, key):
    other_key, _ = p8_key()
    with transport(apns, key, p8_key=other_key) as apns_transport:
        (outcome,) = apns_transport.send_many([push()])
    assert (outcome.kind, outcome.code) == (PERMANENT, "InvalidProviderToken")
    assert "key id" in outcome.message and len(apns.requests) == 1


@pytest.mark.parametrize(
    ("token", "kind", "reason"),
    [
        (device(0x410), SUPPRESS, "Unregistered"),
        (device(0xBAD), SUPPRESS, "BadDeviceToken"),
        (device(0xAB), SUPPRESS, "DeviceTokenNotForTopic"),
        (device(0x429), TEMPORARY, "TooManyRequests"),
        (device(0x500), TEMPORARY, "InternalServerError"),
        (device(0x503), TEMPORARY, "ServiceUnavailable"),
        (device(0xF00), PERMANENT, "SomethingAppleAddsIn2030"),
    ],
)
def test_each_apple_reason_is_classified(apns, key, token, kind, reason):
    assert APNS_ERRORS[token][1] == reason
    with transport(apns, key) as apns_transport:
        (outcome,) = apns_transport.send_many([push(token)])
    assert (outcome.kind, outcome.code) == (kind, reason)


def test_one_dead_token_in_a_batch_fails_only_itself(apns, key):
    with transport(apns, key) as apns_transport:
        outcomes = apns_transport.send_many([push(device(1)), push(device(0x410)), push(device(2))])
    assert [type(o).__name__ for o in outcomes] == ["SendResult", "TransportError", "SendResult"]
    assert outcomes[1].suppress and "uninstalled" in outcomes[1].message


def test_a_wrong_topic_is_permanent(apns, key):
    with transport(apns, key, topic="com.herald.other") as apns_transport:
        (outcome,) = apns_transport.send_many([push()])
    assert (outcome.kind, outcome.code) == (PERMANENT, "BadTopic")
    assert "bundle id" in outcome.message


def test_what_apple_would_refuse_is_not_sent(apns, key):
    with transport(apns, key) as apns_transport:
        big, not_hex, bad_option = apns_transport.send_many([
            push(body="x" * 5000), push("../../3/other"), push(data={"ios": {"badge": -1}}),
        ])  # fmt: skip
    assert (big.kind, big.code) == (PERMANENT, "PayloadTooLarge")
    assert (not_hex.kind, not_hex.code) == (SUPPRESS, "BadDeviceToken")
    assert (bad_option.kind, bad_option.code) == (PERMANENT, "invalid_data")
    assert apns.requests == []


def test_odd_input_is_answered_not_raised(apns, key):
    with transport(apns, key) as apns_transport:
        accented, not_text = apns_transport.send_many(
            [push(idempotency_key="clé-été"), OutboundMessage(channel="push", address=None)]
        )
    assert isinstance(accented, SendResult)
    assert "apns-collapse-id" not in apns.requests[0]["headers"]  # not ASCII: no collapse id
    assert (not_text.kind, not_text.code) == (PERMANENT, "transport_error")


def test_a_slow_a_cut_and_an_html_answer_are_temporary_and_the_next_send_works(apns, key):
    with transport(apns, key, timeout=0.3, concurrency=1) as apns_transport:
        slow, cut, html = apns_transport.send_many(
            [push(APNS_SLOW), push(APNS_RESET), push(APNS_HTML)]
        )
        assert slow.kind == TEMPORARY and "in time" in slow.message
        assert cut.kind == TEMPORARY and "Could not reach APNs" in cut.message
        assert (html.kind, html.code) == (TEMPORARY, 502) and "not JSON" in html.message
        assert isinstance(apns_transport.send(push()), SendResult)


def test_a_connection_broken_under_concurrent_streams_fails_only_as_temporary(apns, key):
    with transport(apns, key, concurrency=4) as apns_transport:
        outcomes = apns_transport.send_many(
            [push(device(i)) for i in range(8)] + [push(APNS_RESET)]
        )
        assert all(isinstance(o, SendResult) or o.kind == TEMPORARY for o in outcomes)
        assert outcomes[-1].kind == TEMPORARY
        assert isinstance(apns_transport.send(push()), SendResult)  # on a new connection


def test_an_untrusted_certificate_and_no_server_send_nothing(apns, key):
    with transport(apns, key, verify=True) as apns_transport:  # the system CAs only
        (untrusted,) = apns_transport.send_many([push()])
    assert untrusted.kind == TEMPORARY and "CERTIFICATE_VERIFY_FAILED" in untrusted.message
    assert apns.requests == []
    with transport(apns, key, base_url=f"https://127.0.0.1:{free_port()}") as apns_transport:
        (refused,) = apns_transport.send_many([push()])
    assert refused.kind == TEMPORARY and "Could not reach APNs" in refused.message


def test_a_private_address_is_refused_unless_allowed(apns, key):
    with transport(apns, key, allow_private=False) as apns_transport:
        (outcome,) = apns_transport.send_many([push()])
    assert (outcome.kind, outcome.code) == (PERMANENT, "blocked_host")
    assert apns.requests == []


def test_the_environment_picks_apples_host():
    pem, _ = p8_key()
    for environment, host in (("production", "api.push.apple.com"),
                              ("sandbox", "api.sandbox.push.apple.com")):  # fmt: skip
        with ApnsTransport(team_id=TEAM, key_id=KEY_ID, topic=TOPIC, p8_key=pem,
                           environment=environment) as apns_transport:  # fmt: skip
            assert apns_transport.base_url == f"https://{host}"
    with pytest.raises(ValueError, match="production or sandbox"):
        ApnsTransport(team_id=TEAM, key_id=KEY_ID, topic=TOPIC, p8_key=pem, environment="dev")
