"""Local fakes of the three push providers, each speaking its provider's real protocol
and checking what the provider checks, so a transport that passes against them would be
accepted by the real one:

- FakeFcm (on a threaded pytest-httpserver): Google's token endpoint verifies the
  JWT-bearer grant's assertion with the service account's public key and issues access
  tokens; messages:send checks the bearer token it issued and the v1 message's shape,
  and answers FCM's own error bodies.
- FakeApns (an ASGI app, served by HypercornTls over HTTP/2 with a trustme certificate):
  verifies the ES256 provider token (kid, iss, iat against its clock) and Apple's headers,
  answers Apple's `{"reason"}` bodies with an `apns-id`, and records the HTTP version and
  the client connection of every request.
- FakePushService (on pytest-httpserver): a browser vendor's push service that verifies
  the VAPID authorization (ES256, aud, exp, sub, the subscription's key), then decrypts
  the aes128gcm body with the keys a FakeBrowser subscribed with.

And two broken servers: half_answer_server closes mid-answer, silent_server never answers."""

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid

import http_ece
import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.channels.conftest import free_port

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_response(status: int, body, headers=None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json",
                    headers=headers or {})  # fmt: skip


def html_response(status: int = 502) -> Response:
    return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", status=status,
                    content_type="text/html")  # fmt: skip


@contextlib.contextmanager
def threaded_httpserver():
    """A pytest-httpserver answering each connection in its own thread (HTTP/1.1
    keep-alive, concurrent requests), on 127.0.0.1."""
    server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


# --- FCM -------------------------------------------------------------------------------


def service_account(token_uri: str, project_id: str = "herald-test") -> tuple[dict, object]:
    """(a Google service account JSON key's fields, its RSA public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"herald-sender@{project_id}.iam.gserviceaccount.com",
        "client_id": "1" * 21,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    return info, key.public_key()


def fcm_error(status: int, status_name: str, message: str, error_code: str = "", extra=()):
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code}] if error_code else []  # fmt: skip
    return {"error": {"code": status, "message": message, "status": status_name,
                      "details": details + list(extra)}}  # fmt: skip


INVALID_TOKEN = "The registration token is not a valid FCM registration token"
FCM_ERRORS = {  # registration token -> what FCM answers for it
    "dead-token": (404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                                  "UNREGISTERED")),
    "not-a-token": (400, fcm_error(400, "INVALID_ARGUMENT", INVALID_TOKEN, "INVALID_ARGUMENT", [
        {"@type": "type.googleapis.com/google.rpc.BadRequest",
         "fieldViolations": [{"field": "message.token", "description": INVALID_TOKEN}]}])),
    "quota": (429, fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric "
                             "'Send requests' of service 'fcm.googleapis.com'", "QUOTA_EXCEEDED")),
    "unavailable": (503, fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.",
                                   "UNAVAILABLE")),
    "internal": (500, fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")),
    "other-project": (403, fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                                     "SENDER_ID_MISMATCH")),
    "apns-refused": (401, fcm_error(401, "UNAUTHENTICATED",
                                    "Auth error from APNS or Web Push Service",
                                    "THIRD_PARTY_AUTH_ERROR")),
    "mystery": (400, fcm_error(400, "FAILED_PRECONDITION", "Something new.", "SOMETHING_NEW")),
}  # fmt: skip
RESERVED_DATA_KEYS = {"from", "notification", "message_type"}
MESSAGE_FIELDS = {"token", "notification", "data", "android", "apns", "webpush", "fcm_options"}


def fcm_shape_error(body) -> str:
    """What FCM would refuse in a messages:send body, as its INVALID_ARGUMENT message."""
    if not isinstance(body, dict) or set(body) != {"message"}:
        return "Invalid JSON payload received. Unknown name at root."
    message = body["message"]
    if unknown := set(message) - MESSAGE_FIELDS:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at message.'
    if not isinstance(message.get("token"), str):
        return "Recipient of the message is not set."
    for key, value in (message.get("data") or {}).items():
        if not isinstance(value, str):
            return f"Invalid value at 'message.data[{key}].value' (TYPE_STRING), {value}"
        if key in RESERVED_DATA_KEYS or key.startswith(("google", "gcm")):
            return f"Invalid data payload key: {key}"
    if not set(message.get("notification") or {}) <= {"title", "body", "image"}:
        return "Invalid JSON payload received. Unknown name at message.notification."
    android = message.get("android") or {}
    if "ttl" in android and not re.fullmatch(r"\d+(\.\d{1,9})?s", android["ttl"]):
        return (
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
        )
    if android.get("priority", "NORMAL") not in ("NORMAL", "HIGH"):
        return "Invalid value at 'message.android.priority' (AndroidMessagePriority)"
    color = (android.get("notification") or {}).get("color")
    if color is not None and not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
        return "Invalid color format: message.android.notification.color"
    apns = message.get("apns") or {}
    if not all(isinstance(v, str) for v in (apns.get("headers") or {}).values()):
        return "Invalid value at 'message.apns.headers'"
    return ""


class FakeFcm:
    """Google's OAuth2 token endpoint and FCM's messages:send, on one server."""

    def __init__(self, server: HTTPServer, *, client_email: str, public_key,
                 project_id: str = "herald-test"):  # fmt: skip
        self.client_email, self.public_key, self.project_id = client_email, public_key, project_id
        self.lock = threading.Lock()
        self.issued: list[str] = []  # access tokens, in the order issued
        self.revoked: set[str] = set()
        self.refuse_every_token = False  # as for a service account without the FCM role
        self.refused_grants = 0
        self.sent: list[tuple[str, dict]] = []  # (bearer token, message) of each accepted send
        self.requests = 0
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0  # seconds each send takes
        self.token_url = server.url_for("/token")
        self.base_url = server.url_for("/").rstrip("/")
        server.expect_request("/token", method="POST").respond_with_handler(self.token)
        server.expect_request(
            f"/v1/projects/{project_id}/messages:send", method="POST"
        ).respond_with_handler(self.send)

    def token(self, request):
        form = request.form
        refused = None
        if form.get("grant_type") != JWT_BEARER:
            refused = ("unsupported_grant_type", "Invalid grant_type")
        else:
            try:
                claims = jwt.decode(
                    form.get("assertion", ""), self.public_key, algorithms=["RS256"],
                    audience=GOOGLE_TOKEN_AUDIENCE, issuer=self.client_email,
                    options={"require": ["exp", "iat", "iss", "aud"]},
                )  # fmt: skip
                if FCM_SCOPE not in claims.get("scope", "").split():
                    refused = ("invalid_scope", "Invalid OAuth scope or ID token audience.")
            except jwt.InvalidTokenError:
                refused = ("invalid_grant", "Invalid JWT Signature.")
        if refused:
            with self.lock:
                self.refused_grants += 1
            return json_response(400, {"error": refused[0], "error_description": refused[1]})
        with self.lock:
            token = f"ya29.fake-{len(self.issued) + 1}-{uuid.uuid4().hex}"
            self.issued.append(token)
        return json_response(200, {"access_token": token, "expires_in": 3599,
                                   "token_type": "Bearer"})  # fmt: skip

    def send(self, request):
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            return self._answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, request):
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if (
            not auth.startswith("Bearer ")
            or token not in self.issued
            or token in self.revoked
            or self.refuse_every_token
        ):
            return json_response(401, fcm_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials. "
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential."))  # fmt: skip
        if not request.content_type.startswith("application/json"):
            return json_response(400, fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return json_response(400, fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        if problem := fcm_shape_error(body):
            return json_response(
                400, fcm_error(400, "INVALID_ARGUMENT", problem, "INVALID_ARGUMENT")
            )
        registration = body["message"]["token"]
        if registration == "html":
            return html_response()
        if registration == "slow":
            time.sleep(1.0)
        if registration in FCM_ERRORS:
            status, answer = FCM_ERRORS[registration]
            return json_response(status, answer)
        with self.lock:
            self.sent.append((token, body["message"]))
            number = len(self.sent)
        name = f"projects/{self.project_id}/messages/0:{number}%31bd1c9631bd1c96"
        return json_response(200, {"name": name})


# --- APNs ------------------------------------------------------------------------------


def p8_key() -> tuple[str, object]:
    """(an APNs .p8 key's PEM text, its public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    return pem, key.public_key()


def device(n: int) -> str:
    """A device token: 32 bytes as 64 hex digits."""
    return f"{n:064x}"


APNS_ERRORS = {  # device token -> (status, Apple's reason)
    device(0x410): (410, "Unregistered"),
    device(0xBAD): (400, "BadDeviceToken"),
    device(0xAB): (400, "DeviceTokenNotForTopic"),
    device(0x429): (429, "TooManyRequests"),
    device(0x500): (500, "InternalServerError"),
    device(0x503): (503, "ServiceUnavailable"),
    device(0xF00): (400, "SomethingAppleAddsIn2030"),
}
APNS_HTML, APNS_SLOW, APNS_RESET = device(0x502), device(0x5105), device(0xC105ED)


class FakeApns:
    """Apple's /3/device/{token} as an ASGI app; `clock` is the time it judges tokens by."""

    def __init__(self, *, public_key, team_id: str, key_id: str, topic: str, clock):
        self.public_key, self.team_id, self.key_id, self.topic = public_key, team_id, key_id, topic
        self.clock = clock
        self.reset()

    def reset(self):
        self.requests: list[dict] = []
        self.tokens: list[str] = []  # distinct provider tokens, in the order first seen
        self.expire_first = 0  # the first N distinct tokens are answered ExpiredProviderToken
        self.expire_all = False

    def _reason_for_token(self, authorization: str) -> str:
        if not authorization.startswith("bearer "):
            return "MissingProviderToken"
        token = authorization.removeprefix("bearer ")
        if token not in self.tokens:
            self.tokens.append(token)
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": False},
            )  # fmt: skip
        except jwt.InvalidTokenError:
            return "InvalidProviderToken"
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return "InvalidProviderToken"
        if (
            self.expire_all
            or self.tokens.index(token) < self.expire_first
            or self.clock() - claims["iat"] > 3600
        ):
            return "ExpiredProviderToken"
        return ""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                await send({"type": event["type"] + ".complete"})
                if event["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        token = scope["path"].removeprefix("/3/device/")
        record = {"http_version": scope["http_version"], "client": scope["client"],
                  "token": token, "headers": headers, "body": body}  # fmt: skip
        self.requests.append(record)
        status, reason = self._judge(scope, headers, token, body)
        if token == APNS_SLOW:
            await asyncio.sleep(1.0)
        if token == APNS_RESET:  # the stream ends 90 bytes short of what it announced
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"100")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b'{"cut":'})
            return
        apns_id = record["apns_id"] = headers.get("apns-id") or str(uuid.uuid4()).upper()
        if token == APNS_HTML:
            await self._answer(send, 502, b"<html><body>Bad Gateway</body></html>",
                               b"text/html", apns_id)  # fmt: skip
            return
        answer = b""
        if reason:
            error = {"reason": reason}
            if status == 410:
                error["timestamp"] = int(self.clock() * 1000)
            answer = json.dumps(error).encode()
        else:
            record["payload"] = json.loads(body)
        await self._answer(send, status, answer, b"application/json", apns_id)

    def _judge(self, scope, headers, token, body) -> tuple[int, str]:
        if scope["method"] != "POST":
            return 405, "MethodNotAllowed"
        if not scope["path"].startswith("/3/device/") or not re.fullmatch(r"[0-9a-f]{64}", token):
            return 400, "BadDeviceToken" if scope["path"].startswith("/3/device/") else "BadPath"
        if reason := self._reason_for_token(headers.get("authorization", "")):
            return 403, reason
        if headers.get("apns-push-type") != "alert":
            return 400, "InvalidPushType"
        if headers.get("apns-topic") != self.topic:
            return 400, "BadTopic" if headers.get("apns-topic") else "MissingTopic"
        if headers.get("apns-priority", "10") not in ("5", "10"):
            return 400, "BadPriority"
        if not headers.get("apns-expiration", "0").isdigit():
            return 400, "BadExpirationDate"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return 400, "BadCollapseId"
        if not body:
            return 400, "PayloadEmpty"
        if len(body) > 4096:
            return 413, "PayloadTooLarge"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, "PayloadEmpty"
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            return 400, "PayloadEmpty"
        return APNS_ERRORS.get(token, (200, ""))

    @staticmethod
    async def _answer(send, status, body, content_type, apns_id):
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"apns-id", apns_id.encode()), (b"content-type", content_type),
            (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class HypercornTls:
    """Serves an ASGI app over TLS (HTTP/2 by ALPN, HTTP/1.1 otherwise) with a certificate
    for 127.0.0.1 from a trustme CA, in a thread; `ca` configures a client to trust it."""

    def __init__(self, app, tmp_path):
        self.app = app
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.certfile, self.keyfile = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
        cert.cert_chain_pems[0].write_to_path(self.certfile)
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(self.certfile, append=True)
        cert.private_key_pem.write_to_path(self.keyfile)
        self.ca_file = str(tmp_path / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"

    def __enter__(self):
        config = Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.certfile, config.keyfile = self.certfile, self.keyfile
        config.accesslog = None
        config.errorlog = None  # the deliberate mid-answer failure would log a traceback
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve(self.app, config, shutdown_trigger=self.stop.wait))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("hypercorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        self.loop.close()


# --- Web Push --------------------------------------------------------------------------


class FakeBrowser:
    """A browser's push subscription: its own P-256 key pair and auth secret, made when it
    subscribed at `endpoint`; decrypt() reads what the push service delivers."""

    def __init__(self, endpoint: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.endpoint = endpoint
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(self.auth)},
        }

    @property
    def address(self) -> str:
        return json.dumps(self.subscription)

    def decrypt(self, body: bytes) -> dict:
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth,
                                           version="aes128gcm"))  # fmt: skip


PUSH_STATUSES = {"gone": 410, "missing": 404, "busy": 429, "bad": 400, "big": 413, "down": 503}


class FakePushService:
    """A push service at /push/<id>: RFC 8030 delivery, RFC 8292 VAPID, RFC 8291 content.
    `application_server_key` is the VAPID public key the browsers subscribed with."""

    def __init__(self, server: HTTPServer, *, application_server_key: str, clock=time.time):
        self.application_server_key = application_server_key
        self.clock = clock
        self.origin = server.url_for("/").rstrip("/")
        self.browsers: dict[str, FakeBrowser] = {}
        self.delivered: list[dict] = []  # {"id", "headers", "payload", "claims", "jwt"}
        self.requests = 0
        self.lock = threading.Lock()
        server.expect_request(re.compile(r"^/push/.+"), method="POST").respond_with_handler(
            self.push
        )

    def subscribe(self, name: str) -> FakeBrowser:
        browser = FakeBrowser(f"{self.origin}/push/{name}")
        self.browsers[name] = browser
        return browser

    def _vapid(self, authorization: str) -> tuple[dict | None, str, str]:
        """(claims, jwt, "") of a valid VAPID authorization, or (None, "", why not)."""
        match = re.fullmatch(r"vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)", authorization)
        if not match:
            return None, "", "no vapid t=...,k=... authorization"
        token, key = match.groups()
        if key != self.application_server_key:
            return None, "", "the key is not the one the subscription was made with"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        try:
            claims = jwt.decode(token, public, algorithms=["ES256"], audience=self.origin,
                                options={"require": ["aud", "exp", "sub"]})  # fmt: skip
        except jwt.InvalidTokenError as e:
            return None, "", f"the VAPID token is invalid: {e}"
        if claims["exp"] > self.clock() + 24 * 3600:
            return None, "", "the VAPID token expires more than 24 hours from now"
        if not claims["sub"].startswith(("mailto:", "https:")):
            return None, "", "the VAPID subject is not a mailto: or https: URL"
        return claims, token, ""

    def push(self, request):
        name = request.path.removeprefix("/push/")
        with self.lock:
            self.requests += 1
        claims, token, problem = self._vapid(request.headers.get("Authorization", ""))
        if problem:
            return json_response(401 if "token" in problem else 403,
                                 {"code": 401, "errno": 109, "error": "Unauthorized",
                                  "message": problem})  # fmt: skip
        if name == "html":
            return html_response()
        if name in PUSH_STATUSES:
            status = PUSH_STATUSES[name]
            return json_response(status, {"code": status, "errno": 106,
                                          "error": "Push refused", "message": name})  # fmt: skip
        headers = request.headers
        if headers.get("Content-Encoding") != "aes128gcm":
            return json_response(400, {"code": 400, "errno": 110, "message": "Content-Encoding"})
        if not (headers.get("TTL") or "").isdigit():
            return json_response(400, {"code": 400, "errno": 111, "message": "Missing TTL"})
        if headers.get("Urgency", "normal") not in ("very-low", "low", "normal", "high"):
            return json_response(400, {"code": 400, "errno": 110, "message": "Bad Urgency"})
        body = request.get_data()
        if len(body) > 4096:
            return json_response(413, {"code": 413, "errno": 104, "message": "Too large"})
        browser = self.browsers.get(name)
        if browser is None:
            return json_response(404, {"code": 404, "errno": 102, "message": "No subscription"})
        try:
            payload = browser.decrypt(body)
        except Exception as e:  # whatever a browser would fail to read
            return json_response(400, {"code": 400, "errno": 110, "message": f"decrypt: {e}"})
        with self.lock:
            self.delivered.append({"id": name, "headers": dict(headers), "payload": payload,
                                   "claims": claims, "jwt": token})  # fmt: skip
            number = len(self.delivered)
        return Response("", status=201, headers={"Location": f"{self.origin}/m/{number}"})


# --- a server that answers half an answer ------------------------------------------------


@contextlib.contextmanager
def half_answer_server():
    """An HTTP server that reads a request, sends a 200's headers and part of its body,
    then closes the connection: an answer cut off mid-way. Yields its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    stopping = threading.Event()

    def serve_forever():
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                while length and len(body) < int(length.group(1)) and (chunk := conn.recv(65536)):
                    body += chunk  # read it all, so closing sends FIN, not a reset
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 500\r\n\r\n{\"name\": \"projects/")  # fmt: skip

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
        thread.join(2)


@contextlib.contextmanager
def silent_server():
    """A socket that takes connections (in the kernel's backlog) and never answers.
    Yields its base URL."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
