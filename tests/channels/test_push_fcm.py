"""The FCM transport against a local fake of Google's token endpoint and FCM's HTTP v1
messages:send (tests/channels/push_fakes.py): the service-account grant verified with the
account's public key, one access token shared by every send and thread, the v1 message
each option maps to, FCM's error codes, and servers that time out, answer HTML, cut an
answer short or are not there."""

import json

import pytest
import time_machine

from channels.transports.base import PERMANENT, SUPPRESS, TEMPORARY, OutboundMessage, SendResult
from channels.transports.push_fcm import FcmTransport
from tests.channels.conftest import free_port
from tests.channels.push_fakes import (
    FakeFcm,
    half_answer_server,
    service_account,
    threaded_httpserver,
)

PROJECT = "herald-test"


@pytest.fixture(scope="module")
def server():
    with threaded_httpserver() as server:
        yield server


@pytest.fixture(scope="module")
def account(server):
    return service_account(server.url_for("/token"), PROJECT)


@pytest.fixture
def fcm(server, account):
    server.clear()
    info, public_key = account
    return FakeFcm(server, client_email=info["client_email"], public_key=public_key)


def transport(fcm, account, **kwargs):
    info, _ = account
    kwargs.setdefault("base_url", fcm.base_url)
    return FcmTransport(project_id=PROJECT, service_account_json=json.dumps(info), **kwargs)


def push(token="device-token-1", **kwargs):
    return OutboundMessage(channel="push", address=token, title="Spring sale",
                           body="Everything is 20% off until Sunday", **kwargs)  # fmt: skip


def test_every_option_reaches_fcm_as_a_v1_message(fcm, account):
    message = push(
        reference="delivery-42",
        data={
            "image": "https://cdn.herald.test/sale.png",
            "deep_link": "https://shop.herald.test/sale",
            "buttons": [{"id": "shop", "label": "Shop now", "url": "https://shop.herald.test"},
                        {"id": "later", "label": "Later"}],
            "ios": {"sound": "default", "badge": 3, "category": "SALE", "thread_id": "sales",
                    "interruption_level": "time-sensitive"},
            "android": {"channel_id": "offers", "priority": "high", "ttl": 3600,
                        "icon": "ic_sale", "color": "#1a73e8"},
            "custom": {"coupon": "SPRING20", "stock": 12, "vip": True},
        },
    )  # fmt: skip
    with transport(fcm, account, clock=lambda: 1_700_000_000) as fcm_transport:
        result = fcm_transport.send(message)
    assert isinstance(result, SendResult)
    assert result.provider_message_id.startswith(f"projects/{PROJECT}/messages/0:")
    (_, sent), = fcm.sent  # fmt: skip
    assert sent == {
        "token": "device-token-1",
        "notification": {"title": "Spring sale", "body": "Everything is 20% off until Sunday",
                         "image": "https://cdn.herald.test/sale.png"},
        "data": {"coupon": "SPRING20", "stock": "12", "vip": "true", "herald_ref": "delivery-42",
                 "deep_link": "https://shop.herald.test/sale",
                 "buttons": '[{"id":"shop","label":"Shop now","url":"https://shop.herald.test"},'
                            '{"id":"later","label":"Later"}]'},
        "android": {"priority": "HIGH", "ttl": "3600s",
                    "notification": {"channel_id": "offers", "icon": "ic_sale",
                                     "color": "#1a73e8"}},
        "apns": {"headers": {"apns-expiration": "1700003600"},
                 "payload": {"aps": {"sound": "default", "badge": 3, "category": "SALE",
                                     "thread-id": "sales", "interruption-level": "time-sensitive",
                                     "mutable-content": 1}},
                 "fcm_options": {"image": "https://cdn.herald.test/sale.png"}},
        "webpush": {"notification": {"actions": [{"action": "shop", "title": "Shop now"},
                                                 {"action": "later", "title": "Later"}]},
                    "fcm_options": {"link": "https://shop.herald.test/sale"}},
    }  # fmt: skip


def test_a_plain_message_carries_only_what_it_has(fcm, account):
    with transport(fcm, account) as fcm_transport:
        fcm_transport.send(push(reference="d-1"))
    (_, sent), = fcm.sent  # fmt: skip
    assert sent == {
        "token": "device-token-1",
        "notification": {"title": "Spring sale", "body": "Everything is 20% off until Sunday"},
        "data": {"herald_ref": "d-1"},
    }


def test_one_token_serves_every_send_and_thread_with_four_in_flight(fcm, account):
    fcm.delay = 0.05  # long enough that four threads overlap
    with transport(fcm, account, concurrency=4) as fcm_transport:
        first = fcm_transport.send_many([push(f"device-{i}") for i in range(16)])
        second = fcm_transport.send_many([push(f"device-{i}") for i in range(16, 24)])
    assert all(isinstance(o, SendResult) for o in first + second)
    assert sorted(m["token"] for _, m in fcm.sent) == sorted(f"device-{i}" for i in range(24))
    assert len(fcm.issued) == 1  # asked once, reused by both batches and all four threads
    assert {token for token, _ in fcm.sent} == {fcm.issued[0]}
    assert fcm.max_in_flight == 4  # never more: one connection each, at most `concurrency`


def test_outcomes_are_in_order_and_one_bad_token_fails_only_itself(fcm, account):
    with transport(fcm, account) as fcm_transport:
        outcomes = fcm_transport.send_many(
            [push("good-1"), push("dead-token"), push("good-2"), push("not-a-token")]
        )
    assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
    assert outcomes[0].provider_message_id != outcomes[2].provider_message_id
    assert [(o.kind, o.code) for o in (outcomes[1], outcomes[3])] == [
        (SUPPRESS, "UNREGISTERED"), (SUPPRESS, "INVALID_ARGUMENT")]  # fmt: skip


@pytest.mark.parametrize(
    ("token", "kind", "code", "said"),
    [
        ("dead-token", SUPPRESS, "UNREGISTERED", "remove it"),
        ("not-a-token", SUPPRESS, "INVALID_ARGUMENT", "not a valid FCM registration token"),
        ("quota", TEMPORARY, "QUOTA_EXCEEDED", "Quota exceeded"),
        ("unavailable", TEMPORARY, "UNAVAILABLE", "unavailable"),
        ("internal", TEMPORARY, "INTERNAL", "Internal error"),
        ("other-project", PERMANENT, "SENDER_ID_MISMATCH", "another Firebase project"),
        ("apns-refused", PERMANENT, "THIRD_PARTY_AUTH_ERROR", "APNs key"),
        ("mystery", PERMANENT, "SOMETHING_NEW", "FCM 400 SOMETHING_NEW: Something new."),
    ],
)
def test_each_fcm_error_is_classified(fcm, account, token, kind, code, said):
    with transport(fcm, account) as fcm_transport:
        (outcome,) = fcm_transport.send_many([push(token)])
    assert (outcome.kind, outcome.code) == (kind, code)
    assert said in outcome.message


def test_a_message_fcm_refuses_is_permanent_not_a_dead_token(fcm, account):
    with transport(fcm, account) as fcm_transport:
        (outcome,) = fcm_transport.send_many([push(data={"custom": {"from": "herald"}})])
    assert (outcome.kind, outcome.code) == (PERMANENT, "INVALID_ARGUMENT")
    assert "Invalid data payload key: from" in outcome.message
    assert "message's content" in outcome.message


def test_bad_push_options_are_refused_before_sending(fcm, account):
    with transport(fcm, account) as fcm_transport:
        outcomes = fcm_transport.send_many([
            push(data={"android": {"priority": "urgent"}}),
            push(data={"buttons": [{"id": str(i), "label": "x"} for i in range(4)]}),
            push(data={"ios": {"badge": "three"}}),
        ])  # fmt: skip
    assert [(o.kind, o.code) for o in outcomes] == [(PERMANENT, "invalid_data")] * 3
    assert "data.android.priority is normal or high" in outcomes[0].message
    assert "at most 3" in outcomes[1].message and "data.ios.badge" in outcomes[2].message
    assert fcm.requests == 0


def test_a_refusing_token_endpoint_fails_the_batch_naming_the_service_account(server, fcm, account):
    other_info, _ = service_account(server.url_for("/token"), PROJECT)  # a key Google never saw
    with FcmTransport(project_id=PROJECT, service_account_json=other_info,
                      base_url=fcm.base_url) as fcm_transport:  # fmt: skip
        outcomes = fcm_transport.send_many([push("a"), push("b"), push("c")])
    assert {(o.kind, o.code) for o in outcomes} == {(PERMANENT, "token_refused")}
    assert other_info["client_email"] in outcomes[0].message
    assert "invalid_grant" in outcomes[0].message
    assert fcm.refused_grants == 1 and fcm.requests == 0  # asked once, nothing sent


def test_a_revoked_access_token_is_replaced_once(fcm, account):
    with transport(fcm, account) as fcm_transport:
        fcm_transport.send(push("a"))
        fcm.revoked.add(fcm.issued[0])
        result = fcm_transport.send(push("b"))
    assert isinstance(result, SendResult)
    assert len(fcm.issued) == 2 and fcm.sent[-1][0] == fcm.issued[1]


def test_access_tokens_fcm_keeps_refusing_are_permanent_after_one_new_one(fcm, account):
    fcm.refuse_every_token = True
    with transport(fcm, account) as fcm_transport:
        (outcome,) = fcm_transport.send_many([push("a")])
    assert (outcome.kind, outcome.code) == (PERMANENT, "UNAUTHENTICATED")
    assert "access token" in outcome.message
    assert len(fcm.issued) == 2 and fcm.requests == 2


def test_the_access_token_is_renewed_near_its_expiry(fcm, account):
    with (
        time_machine.travel("2030-01-01 12:00:00Z", tick=True) as traveller,
        transport(fcm, account) as fcm_transport,
    ):
        fcm_transport.send(push("a"))
        traveller.shift(50 * 60)  # 50 of its 60 minutes: still good
        fcm_transport.send(push("b"))
        assert len(fcm.issued) == 1
        traveller.shift(8 * 60)  # under 4 minutes left: google-auth's threshold
        fcm_transport.send(push("c"))
    assert len(fcm.issued) == 2 and fcm.sent[-1][0] == fcm.issued[1]


def test_html_a_timeout_a_cut_answer_and_no_server_are_temporary(fcm, account):
    with transport(fcm, account, timeout=0.5) as fcm_transport:
        html, slow = fcm_transport.send_many([push("html"), push("slow")])
    assert (html.kind, html.code) == (TEMPORARY, 502) and "not JSON" in html.message
    assert slow.kind == TEMPORARY and "in time" in slow.message

    with half_answer_server() as url, transport(fcm, account, base_url=url) as fcm_transport:
        (cut,) = fcm_transport.send_many([push("a")])
    assert cut.kind == TEMPORARY and "Could not reach FCM" in cut.message

    nowhere = f"http://127.0.0.1:{free_port()}"
    with transport(fcm, account, base_url=nowhere) as fcm_transport:
        (refused,) = fcm_transport.send_many([push("a")])
    assert refused.kind == TEMPORARY and "Could not reach FCM" in refused.message
    with transport(fcm, account, token_url=f"{nowhere}/token") as fcm_transport:
        (no_token,) = fcm_transport.send_many([push("a")])
    assert no_token.kind == TEMPORARY and "token endpoint" in no_token.message


def test_a_private_address_is_refused_unless_allowed(fcm, account):
    with transport(fcm, account, allow_private=False) as fcm_transport:
        outcomes = fcm_transport.send_many([push("a"), push("b")])
    assert {(o.kind, o.code) for o in outcomes} == {(PERMANENT, "blocked_host")}
    assert "private or reserved address" in outcomes[0].message
    assert fcm.issued == [] and fcm.requests == 0
