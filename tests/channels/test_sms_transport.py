"""The Twilio transport against a local fake of Twilio's Messages API (pytest-httpserver):
the request Twilio expects (Basic auth, form fields, idempotency token), each error code
class, and providers that answer HTML, time out or are not there."""

import base64
import json
import socket
import time

import pytest
from werkzeug import Response

from channels.transports.base import PERMANENT, SUPPRESS, TEMPORARY, OutboundMessage, SendResult
from channels.transports.sms import TwilioTransport

SID, TOKEN = "AC" + "1" * 32, "secret-token"
ERRORS = {
    "+15005550001": (400, {"code": 21211, "message": "The 'To' number is not a valid number."}),
    "+15005550009": (400, {"code": 21614, "message": "'To' number is not a valid mobile number"}),
    "+15005550004": (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}),
    "+15005550005": (429, {"code": 20429, "message": "Too Many Requests"}),
    "+15005550006": (503, {"code": 20503, "message": "Service Unavailable"}),
}


class FakeTwilio:
    def __init__(self):
        self.requests = []

    def __call__(self, request):
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response(json.dumps({"code": 20003, "message": "Authenticate", "status": 401}),
                            status=401, content_type="application/json")  # fmt: skip
        form = request.form.to_dict()
        self.requests.append((form, request.headers.get("I-Twilio-Idempotency-Token")))
        if form["To"] == "+15005550100":
            return Response("<html><body>502 Bad Gateway</body></html>", status=502,
                            content_type="text/html")  # fmt: skip
        if form["To"] == "+15005550200":
            time.sleep(1.5)
        status, body = ERRORS.get(form["To"], (201, None))
        if body is None:
            body = {"sid": f"SM{len(self.requests):032d}", "status": "queued", "to": form["To"]}
        return Response(json.dumps({**body, "status": body.get("status", status)}), status=status,
                        content_type="application/json")  # fmt: skip


@pytest.fixture
def twilio(httpserver):
    fake = FakeTwilio()
    httpserver.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    fake.url = httpserver.url_for("/")
    return fake


def sms(to, key=""):
    return OutboundMessage(
        channel="sms", address=to, body="Spring sale: 20% off", idempotency_key=key
    )


def test_messages_reach_twilio_as_it_expects_and_errors_are_classified(twilio):
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000",
        status_callback="https://herald.test/webhooks/twilio/status", base_url=twilio.url,
    ) as transport:  # fmt: skip
        outcomes = transport.send_many(
            [sms("+15551234567", key="delivery-7"), *(sms(n) for n in ERRORS), sms("+15557654321")]
        )
    assert isinstance(outcomes[0], SendResult) and outcomes[0].provider_message_id.startswith("SM")
    kinds = [o.kind for o in outcomes[1:-1]]
    assert kinds == [PERMANENT, PERMANENT, SUPPRESS, TEMPORARY, TEMPORARY]
    assert [o.code for o in outcomes[1:-1]] == [21211, 21614, 21610, 20429, 20503]
    assert "not a mobile number" in outcomes[2].message
    assert isinstance(outcomes[-1], SendResult)
    form, token = twilio.requests[0]
    assert form == {
        "To": "+15551234567", "Body": "Spring sale: 20% off", "From": "+15005550000",
        "StatusCallback": "https://herald.test/webhooks/twilio/status",
    }  # fmt: skip
    assert token == "delivery-7"


def test_a_messaging_service_replaces_the_from_number(twilio):
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, messaging_service_sid="MG" + "2" * 32,
        base_url=twilio.url,
    ) as transport:  # fmt: skip
        transport.send(sms("+15551234567"))
    form, _ = twilio.requests[0]
    assert form["MessagingServiceSid"] == "MG" + "2" * 32 and "From" not in form


def test_a_wrong_auth_token_is_permanent(twilio):
    with TwilioTransport(
        account_sid=SID, auth_token="wrong", from_number="+15005550000", base_url=twilio.url
    ) as transport:
        (outcome,) = transport.send_many([sms("+15551234567")])
    assert outcome.kind == PERMANENT and outcome.code == 20003
    assert "auth token is wrong" in outcome.message


def test_html_a_timeout_and_no_server_are_classified(twilio):
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000", base_url=twilio.url,
        timeout=0.5,
    ) as transport:  # fmt: skip
        html, slow = transport.send_many([sms("+15005550100"), sms("+15005550200")])
    assert html.kind == TEMPORARY and "not JSON" in html.message and html.code == 502
    assert slow.kind == TEMPORARY and "in time" in slow.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000",
        base_url=f"http://127.0.0.1:{port}",
    ) as transport:  # fmt: skip
        (gone,) = transport.send_many([sms("+15551234567")])
    assert gone.kind == TEMPORARY and "Could not reach Twilio" in gone.message


def test_a_sender_is_required():
    with pytest.raises(ValueError, match="From number or a Messaging Service"):
        TwilioTransport(account_sid=SID, auth_token=TOKEN)
