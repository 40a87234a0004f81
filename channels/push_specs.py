"""What each push provider kind needs, checked field by field so a form or the API can
name the bad one: FCM (a Google service account), APNs (a team's .p8 key) and Web Push (a
VAPID key). Each clean_* takes the settings and all the secrets (stored and new, merged)
and answers (cleaned settings, {field: message}), like the SMTP and Twilio checks in
channels.providers, which calls them."""

import json
import re

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from google.oauth2 import service_account

from channels.transports.push_apns import APNS_HOSTS, load_p8_key
from channels.transports.push_fcm import FCM_API, FCM_SCOPE
from channels.transports.push_webpush import load_vapid_key, vapid_public_key

# (settings, secrets) of each kind, for channels.providers.SPECS
PUSH_FIELDS = {
    "fcm": (("project_id", "base_url", "token_url"), ("service_account_json",)),
    "apns": (("team_id", "key_id", "topic", "environment", "base_url"), ("p8_key",)),
    "webpush": (("vapid_subject", "vapid_public_key"), ("vapid_private_key",)),
}

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_validate_url = URLValidator(schemes=["https", "http"])
_FIND_KEY = "Firebase console → Project settings → Service accounts → Generate new private key"


def _url_error(url: str) -> bool:
    try:
        _validate_url(url)
    except ValidationError:
        return True
    return False


def service_account_problem(raw: str) -> tuple[dict | None, str]:
    """(the key's fields, "") of a service account JSON key, or (None, what is wrong)."""
    try:
        info = json.loads(raw)
    except ValueError:
        return None, f"This is not JSON: paste the whole key file, from {{ to }} ({_FIND_KEY})."
    if not isinstance(info, dict):
        return None, "This JSON is not a service account key (an object with client_email…)."
    kind = info.get("type")
    if kind != "service_account":
        if "project_info" in info or "client" in info:
            return None, (
                "This is google-services.json, the app's configuration, not a service "
                f"account key: {_FIND_KEY}."
            )
        said = f"a “{kind}” key" if isinstance(kind, str) and kind else "not a key"
        return None, f"This JSON is {said}, not a service account key ({_FIND_KEY})."
    email = info.get("client_email")
    try:
        validate_email(email if isinstance(email, str) else "")
    except ValidationError:
        return None, "The service account key has no client_email: download a new key."
    private_key = info.get("private_key")
    try:
        key = load_pem_private_key(str(private_key or "").encode(), password=None)
    except (ValueError, TypeError):
        return None, (
            "The service account key's private_key is not a PEM private key (was the JSON "
            "edited?): download a new key."
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        return None, "The service account key's private_key is not an RSA key, as Google's are."
    token_uri = info.get("token_uri")
    if not isinstance(token_uri, str) or _url_error(token_uri):
        return (
            None,
            "The service account key has no token_uri (https://oauth2.googleapis.com/token).",
        )
    try:
        service_account.Credentials.from_service_account_info(info, scopes=[FCM_SCOPE])
    except (ValueError, KeyError) as e:
        return None, f"google-auth cannot use this service account key: {e}"
    return info, ""


def clean_fcm(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    info = None
    raw = secrets.get("service_account_json") or ""
    if not raw:
        errors["service_account_json"] = f"Give the service account's JSON key ({_FIND_KEY})."
    else:
        info, problem = service_account_problem(raw)
        if problem:
            errors["service_account_json"] = problem
    project_id = str(values.get("project_id") or (info or {}).get("project_id") or "")
    if not project_id:
        errors["project_id"] = "Give the Firebase project id (Project settings → General)."
    elif not _PROJECT_ID.match(project_id):
        errors["project_id"] = (
            "A Firebase project id is 6 to 30 lowercase letters, digits and hyphens, starting "
            "with a letter (e.g. herald-app-12345)."
        )
    base_url = str(values.get("base_url") or FCM_API)
    if _url_error(base_url):
        errors["base_url"] = f"The FCM address is a URL ({FCM_API})."
    token_url = str(values.get("token_url") or "")
    if token_url and _url_error(token_url):
        errors["token_url"] = "The token endpoint is a URL (https://oauth2.googleapis.com/token)."
    cleaned = {"project_id": project_id, "base_url": base_url}
    if token_url:
        cleaned["token_url"] = token_url
    return cleaned, errors


def clean_apns(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    team_id = str(values.get("team_id") or "").upper()
    if not _APPLE_ID.match(team_id):
        errors["team_id"] = (
            "The Team ID is 10 letters and digits (Apple Developer → Membership details)."
        )
    key_id = str(values.get("key_id") or "").upper()
    if not _APPLE_ID.match(key_id):
        errors["key_id"] = (
            "The Key ID is 10 letters and digits, shown with the key (and in its file name, "
            "AuthKey_<Key ID>.p8)."
        )
    topic = str(values.get("topic") or "")
    if not _BUNDLE_ID.match(topic):
        errors["topic"] = "The topic is the app's bundle id (e.g. com.example.app)."
    environment = str(values.get("environment") or "")
    if environment not in APNS_HOSTS:
        errors["environment"] = (
            "The environment is production (App Store and TestFlight builds) or sandbox "
            "(builds run from Xcode): tokens of one are refused by the other."
        )
    base_url = str(values.get("base_url") or APNS_HOSTS.get(environment, ""))
    if environment in APNS_HOSTS and _url_error(base_url):
        errors["base_url"] = f"The APNs address is a URL ({APNS_HOSTS[environment]})."
    p8_key = secrets.get("p8_key") or ""
    if not p8_key:
        errors["p8_key"] = "Give the .p8 key (Apple Developer → Keys, with APNs enabled)."
    else:
        try:
            load_p8_key(p8_key)
        except ValueError as e:
            errors["p8_key"] = str(e)
    cleaned = {"team_id": team_id, "key_id": key_id, "topic": topic, "environment": environment}
    if base_url:
        cleaned["base_url"] = base_url
    return cleaned, errors


def _subject_error(subject: str) -> bool:
    if subject.startswith("mailto:"):
        try:
            validate_email(subject.removeprefix("mailto:"))
        except ValidationError:
            return True
        return False
    return not subject.startswith("https://") or _url_error(subject)


def clean_webpush(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    subject = str(values.get("vapid_subject") or "")
    if _subject_error(subject):
        errors["vapid_subject"] = (
            "The VAPID subject is how a push service can reach you: a mailto: address "
            "(mailto:ops@example.com) or an https: URL."
        )
    cleaned = {"vapid_subject": subject}
    private_key = secrets.get("vapid_private_key") or ""
    if not private_key:
        errors["vapid_private_key"] = (
            "Give the VAPID private key (PEM, or the base64url private key web-push prints)."
        )
        return cleaned, errors
    try:
        public_key = vapid_public_key(load_vapid_key(private_key))
    except ValueError as e:
        errors["vapid_private_key"] = str(e)
        return cleaned, errors
    given = str(values.get("vapid_public_key") or "").rstrip("=")
    if given and given != public_key:
        errors["vapid_public_key"] = (
            "This public key is not the private key's: browsers subscribed with one cannot "
            "be reached with the other. Leave it empty to use the private key's."
        )
    cleaned["vapid_public_key"] = public_key
    return cleaned, errors


__all__ = ["PUSH_FIELDS", "clean_apns", "clean_fcm", "clean_webpush", "vapid_public_key"]
