"""The Twilio transport against a local fake of Twilio's Messages API (pytest-httpserver,
threaded: Twilio answers many requests at once): the request Twilio expects (Basic auth,
form fields, idempotency token), each error code class, providers that answer HTML, time
out or are not there; batches sent `concurrency` requests at once and answered in order,
over that many keep-alive connections (counted by a second, keep-alive fake: werkzeug
closes every connection after one answer)."""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response
from werkzeug.serving import WSGIRequestHandler

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


def sid_for(to):
    """The fake's message SID names the number, so a test can tell whose answer it got."""
    return "SM" + to.lstrip("+").rjust(32, "0")


class FakeTwilio:
    """Answers like Twilio; `peak` is the most requests it had in flight at once.
    `delay`: seconds before a success is answered."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.requests = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return self.answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def answer(self, request):
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return Response(json.dumps({"code": 20003, "message": "Authenticate", "status": 401}),
                            status=401, content_type="application/json")  # fmt: skip
        form = request.form.to_dict()
        with self.lock:
            self.requests.append((form, request.headers.get("I-Twilio-Idempotency-Token")))
        if form["To"] == "+15005550100":
            return Response("<html><body>502 Bad Gateway</body></html>", status=502,
                            content_type="text/html")  # fmt: skip
        if form["To"] == "+15005550200":
            time.sleep(1.5)
        status, body = ERRORS.get(form["To"], (201, None))
        if body is None:
            time.sleep(self.delay)
            body = {"sid": sid_for(form["To"]), "status": "queued", "to": form["To"]}
        return Response(json.dumps({**body, "status": body.get("status", status)}), status=status,
                        content_type="application/json")  # fmt: skip


@pytest.fixture(scope="module")
def twilio_server():
    # a threaded werkzeug server sets HTTP/1.1 on werkzeug's shared handler class, for
    # every server after it (the session's httpserver too): set it here, undone after
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WSGIRequestHandler, "protocol_version", "HTTP/1.1")
        with HTTPServer(host="127.0.0.1", threaded=True) as server:
            yield server


@pytest.fixture
def twilio(twilio_server):
    twilio_server.clear()
    fake = FakeTwilio()
    twilio_server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    fake.url = twilio_server.url_for("/")
    return fake


class KeepAliveTwilio(ThreadingHTTPServer):
    """Takes every message (201 after `delay`) on HTTP/1.1 keep-alive connections and
    counts them: `open` now, `peak` at most at once, `ports` every one it was given."""

    daemon_threads = True

    def __init__(self, delay):
        self.delay = delay
        self.open = self.peak = 0
        self.ports = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), KeepAliveHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the body is a second write: no delayed-ACK wait

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.open += 1
            self.server.peak = max(self.server.peak, self.server.open)
            self.server.ports.add(self.client_address[1])

    def finish(self):
        with self.server.lock:
            self.server.open -= 1
        super().finish()

    def do_POST(self):  # noqa: N802 - http.server's naming
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        time.sleep(self.server.delay)
        body = json.dumps({"sid": sid_for(form["To"][0]), "status": "queued"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def keepalive_twilio():
    server = KeepAliveTwilio(delay=0.05)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


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
    # sent concurrently, so not necessarily the first to arrive
    form, token = next(r for r in twilio.requests if r[0]["To"] == "+15551234567")
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


def test_a_sender_is_required_and_at_least_one_connection():
    with pytest.raises(ValueError, match="From number or a Messaging Service"):
        TwilioTransport(account_sid=SID, auth_token=TOKEN)
    with pytest.raises(ValueError, match="at least 1"):
        TwilioTransport(
            account_sid=SID, auth_token=TOKEN, from_number="+15005550000", concurrency=0
        )


def test_a_concurrent_batch_is_answered_in_the_order_of_its_messages(twilio):
    """Successes answer late and errors at once, so answers arrive out of order."""
    twilio.delay = 0.03
    numbers = [n for i, e in enumerate(ERRORS) for n in (f"+1555000{i:04d}", e)] + ["+15559990000"]
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000", base_url=twilio.url,
        concurrency=4,
    ) as transport:  # fmt: skip
        outcomes = transport.send_many([sms(n, key=f"delivery-{n}") for n in numbers])
    assert len(outcomes) == len(numbers)
    kinds = {
        21211: PERMANENT,
        21614: PERMANENT,
        21610: SUPPRESS,
        20429: TEMPORARY,
        20503: TEMPORARY,
    }
    for number, outcome in zip(numbers, outcomes, strict=True):
        if number in ERRORS:
            code = ERRORS[number][1]["code"]
            assert (outcome.kind, outcome.code) == (kinds[code], code), number
        else:
            assert isinstance(outcome, SendResult) and outcome.provider_message_id == sid_for(
                number
            )
    assert sorted(token for _, token in twilio.requests) == sorted(f"delivery-{n}" for n in numbers)
    assert 1 < twilio.peak <= 4  # concurrently, and no more than 4 at once


def pool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("herald-twilio")]


def test_a_batch_uses_at_most_concurrency_connections_kept_until_close(keepalive_twilio):
    fake = keepalive_twilio
    transport = TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000", base_url=fake.url,
        concurrency=4,
    )  # fmt: skip
    try:
        for batch in range(2):  # the second batch goes over the first one's connections
            numbers = [f"+1555{batch}{i:06d}" for i in range(12)]
            outcomes = transport.send_many([sms(n) for n in numbers])
            assert [o.provider_message_id for o in outcomes] == [sid_for(n) for n in numbers]
        assert fake.peak == 4 and len(fake.ports) == 4 and fake.open == 4
        assert len(pool_threads()) == 4
    finally:
        transport.close()
    assert pool_threads() == []
    deadline = time.monotonic() + 2
    while fake.open and time.monotonic() < deadline:  # the fake sees each close as EOF
        time.sleep(0.01)
    assert fake.open == 0


def test_concurrency_one_sends_one_after_the_other_on_one_connection(keepalive_twilio):
    keepalive_twilio.delay = 0.01
    numbers = [f"+1555000{i:04d}" for i in range(6)]
    with TwilioTransport(
        account_sid=SID, auth_token=TOKEN, from_number="+15005550000",
        base_url=keepalive_twilio.url, concurrency=1,
    ) as transport:  # fmt: skip
        outcomes = transport.send_many([sms(n) for n in numbers])
        assert pool_threads() == []
    assert [o.provider_message_id for o in outcomes] == [sid_for(n) for n in numbers]
    assert keepalive_twilio.peak == 1 and len(keepalive_twilio.ports) == 1
