"""Android (and any app on Firebase) push through FCM's HTTP v1 API: an OAuth2 access
token from the workspace's service account (google-auth's JWT-bearer grant), cached until
near expiry and shared by the transport's threads, then one POST messages:send per token
with up to `concurrency` in flight over one client.

google-auth refreshes through a google.auth.transport.Request; the one here sends over
the transport's own guarded httpx client, because the token endpoint comes from the
service account JSON a workspace pasted and must pass the same SSRF check as FCM itself
(google-auth's requests adapter would bypass it).

FCM's errors (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode):
UNREGISTERED, and INVALID_ARGUMENT about the token, are suppress (the app is gone: the
caller removes the token; `code` is FCM's error code); QUOTA_EXCEEDED, UNAVAILABLE,
INTERNAL, 429 and 5xx temporary; SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR, 401 and 403
permanent with what to fix. A token endpoint that refuses the service account is
permanent for the whole batch and names the account."""

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote

import google.auth.exceptions
import google.auth.transport
import httpx
from google.auth.credentials import TokenState
from google.oauth2 import service_account

from channels.transports.base import (
    PERMANENT,
    SUPPRESS,
    TEMPORARY,
    OutboundMessage,
    Outcome,
    SendResult,
    Transport,
    TransportError,
)
from channels.transports.push import (
    NETWORK_ERRORS,
    PushContent,
    PushDataError,
    aps,
    excerpt,
    invalid_data,
    network_error,
    not_json,
    push_client,
    push_content,
    send_concurrently,
)

FCM_API = "https://fcm.googleapis.com"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
TEMPORARY_CODES = {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}
PERMANENT_HINTS = {
    "SENDER_ID_MISMATCH": "the token belongs to an app of another Firebase project",
    "THIRD_PARTY_AUTH_ERROR": "Firebase's APNs key or Web Push credentials were refused: "
    "check the APNs key uploaded in the Firebase console (Project settings → Cloud Messaging)",
    "INVALID_ARGUMENT": "FCM refused the message's content",
    "PERMISSION_DENIED": "the service account may not send for this project: give it the "
    "Firebase Cloud Messaging API Admin role and enable the FCM API",
    "UNAUTHENTICATED": "FCM refused the service account's access token",
    "NOT_FOUND": "there is no such Firebase project at this address: check the project id",
}


def fcm_error_parts(answer) -> tuple[str, str, str, bool]:
    """(FCM error code, canonical status, message, whether it is about the token) of an
    error answer `{"error": {"code", "status", "message", "details": [...]}}`."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return "", "", "", False
    error_code, about_token = "", False
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == FCM_ERROR and isinstance(detail.get("errorCode"), str):
            error_code = detail["errorCode"]
        if detail.get("@type") == BAD_REQUEST:
            violations = detail.get("fieldViolations")
            for violation in violations if isinstance(violations, list) else ():
                if isinstance(violation, dict) and violation.get("field") == "message.token":
                    about_token = True
    message = str(error.get("message") or "")
    about_token = about_token or "registration token" in message.lower()
    return error_code, str(error.get("status") or ""), message, about_token


def classify_fcm(status: int, answer) -> TransportError:
    """An FCM error answer as a TransportError (module docstring)."""
    error_code, status_name, message, about_token = fcm_error_parts(answer)
    code = error_code or status_name or status
    said = f"FCM {status} {code}" + (f": {message}" if message else "")
    if error_code == "UNREGISTERED":
        return TransportError(
            SUPPRESS, f"The app was uninstalled or its token expired: remove it. {said}", code=code
        )
    if (error_code or status_name) == "INVALID_ARGUMENT" and about_token:
        return TransportError(
            SUPPRESS, f"This is not a valid FCM registration token: remove it. {said}", code=code
        )
    if error_code in TEMPORARY_CODES or status == 429 or status >= 500:
        return TransportError(TEMPORARY, said, code=code)
    hint = PERMANENT_HINTS.get(error_code) or PERMANENT_HINTS.get(status_name)
    return TransportError(PERMANENT, said + (f" ({hint})" if hint else ""), code=code)


def fcm_message(
    message: OutboundMessage, content: PushContent, *, now: float | None = None
) -> dict:
    """The body of messages:send for one token: notification, data (strings only),
    android, apns (for iOS apps on Firebase) and webpush options."""
    notification = {k: v for k, v in (("title", content.title), ("body", content.body),
                                      ("image", content.image)) if v}  # fmt: skip
    body: dict = {"token": message.address}
    if notification:
        body["notification"] = notification
    data = content.app_data()
    if content.buttons:  # the app draws them: FCM has no buttons of its own on Android
        data["buttons"] = json.dumps(list(content.buttons), separators=(",", ":"))
    if data:
        body["data"] = data

    android: dict = {}
    if priority := content.android.get("priority"):
        android["priority"] = priority.upper()
    if content.ttl is not None:
        android["ttl"] = f"{content.ttl}s"
    android_notification = {
        key: content.android[key]
        for key in ("channel_id", "icon", "color")
        if key in content.android
    }
    if android_notification:
        android["notification"] = android_notification
    if android:
        body["android"] = android

    ios = aps(content)
    ios.pop("alert", None)  # FCM shows message.notification's title and body
    apns: dict = {}
    headers = {}
    if content.ios.get("interruption_level") == "passive":
        headers["apns-priority"] = "5"
    if content.ttl is not None:
        now = time.time() if now is None else now
        headers["apns-expiration"] = str(int(now) + content.ttl)
    if headers:
        apns["headers"] = headers
    if ios:
        apns["payload"] = {"aps": ios}
    if content.image:
        apns["fcm_options"] = {"image": content.image}
    if apns:
        body["apns"] = apns

    webpush: dict = {}
    if content.buttons:
        webpush["notification"] = {
            "actions": [{"action": b["id"], "title": b["label"]} for b in content.buttons]
        }
    if content.deep_link.startswith("https://"):  # FCM takes only HTTPS links for the web
        webpush["fcm_options"] = {"link": content.deep_link}
    if webpush:
        body["webpush"] = webpush
    return {"message": body}


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response):
        self._response = response

    @property
    def status(self):
        return self._response.status_code

    @property
    def headers(self):
        return self._response.headers

    @property
    def data(self):
        return self._response.content


class _GuardedRequest(google.auth.transport.Request):
    """google-auth's HTTP requests (the token grant) over the transport's guarded client."""

    def __init__(self, client: httpx.Client):
        self.client = client

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        try:
            response = self.client.request(
                method, url, content=body, headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )  # fmt: skip
        except NETWORK_ERRORS as e:
            raise google.auth.exceptions.TransportError(str(e)) from e
        return _Response(response)


class FcmTransport(Transport):
    channel = "push"

    def __init__(
        self,
        *,
        project_id: str,
        service_account_json: str | Mapping,
        base_url: str = FCM_API,
        token_url: str = "",
        timeout: float = 10,
        concurrency: int = 4,
        allow_private: bool | None = None,
        verify=True,
        clock: Callable[[], float] = time.time,
    ):
        info = (
            json.loads(service_account_json)
            if isinstance(service_account_json, str)
            else dict(service_account_json)
        )
        if token_url:
            info["token_uri"] = token_url
        self.project_id = project_id
        self.concurrency = max(1, concurrency)
        self.clock = clock
        self._credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[FCM_SCOPE]
        )
        self._client = push_client(
            base_url=base_url, timeout=timeout, concurrency=self.concurrency,
            allow_private=allow_private, http2=False, verify=verify,
        )  # fmt: skip
        self._auth_request = _GuardedRequest(self._client)
        self._token_lock = threading.Lock()
        self._path = f"/v1/projects/{quote(project_id, safe='')}/messages:send"

    def close(self) -> None:
        self._client.close()

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        if not messages:
            return []
        try:  # one token for the batch: a refusing token endpoint is asked once, not N times
            self._access_token()
        except TransportError as e:
            return [e] * len(messages)
        return send_concurrently(self._send_one, messages, self.concurrency)

    def _access_token(self, rejected: str = "") -> str:
        """The cached access token, refreshed when near expiry (google-auth's threshold)
        or when FCM refused `rejected` and no other thread has replaced it yet."""
        credentials = self._credentials
        with self._token_lock:
            if credentials.token_state != TokenState.FRESH or (
                rejected and credentials.token == rejected
            ):
                self._refresh()
            return credentials.token

    def _refresh(self) -> None:
        account = self._credentials.service_account_email
        try:
            self._credentials.refresh(self._auth_request)
        except google.auth.exceptions.TransportError as e:
            cause = e.__cause__
            if isinstance(cause, NETWORK_ERRORS):
                error = network_error("Google's token endpoint", cause)
                raise TransportError(
                    error.kind, f"{error.message} (service account {account})", code=error.code
                ) from e
            raise TransportError(TEMPORARY, f"Could not get an access token: {e}") from e
        except google.auth.exceptions.RefreshError as e:
            said = e.args[0] if e.args else str(e)
            if e.retryable:
                raise TransportError(
                    TEMPORARY, f"Google's token endpoint is failing for {account}: {said}"
                ) from e
            raise TransportError(
                PERMANENT,
                f"The token endpoint refused the service account {account}: {said} (the key "
                "may have been deleted or revoked: create a new JSON key for it in Google "
                "Cloud → IAM → Service accounts)",
                code="token_refused",
            ) from e
        except (ValueError, TypeError, KeyError) as e:  # an answer without a usable token
            raise TransportError(
                PERMANENT,
                f"The token endpoint answered {account} with something that is not an access "
                f"token: {e}",
                code="token_refused",
            ) from e

    def _send_one(self, message: OutboundMessage) -> Outcome:
        try:
            content = push_content(message)
        except PushDataError as e:
            return invalid_data(e)
        body = json.dumps(
            fcm_message(message, content, now=self.clock()), separators=(",", ":")
        ).encode()
        rejected = ""
        for attempt in range(2):
            try:
                token = self._access_token(rejected)
            except TransportError as e:
                return e
            try:
                response = self._client.post(
                    self._path, content=body,
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "application/json; charset=utf-8"},
                )  # fmt: skip
            except NETWORK_ERRORS as e:
                return network_error("FCM", e)
            try:
                answer = response.json()
            except ValueError:
                return not_json("FCM", response)
            if response.status_code == 200 and isinstance(answer, dict) and answer.get("name"):
                return SendResult(provider_message_id=str(answer["name"]), detail="accepted")
            if response.status_code == 401 and attempt == 0 and not fcm_error_parts(answer)[0]:
                rejected = token  # revoked or expired early: one new token, one more try
                continue
            if response.status_code == 200:
                return TransportError(
                    TEMPORARY, f"FCM answered 200 without a message name: {excerpt(response)}"
                )
            return classify_fcm(response.status_code, answer)
        return classify_fcm(response.status_code, answer)
