"""What a person setting up push types in: each push provider kind's settings and secrets
cleaned with their defaults, and every mistake answered on the field that holds it, with
a message that says what to paste instead."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from channels.push_specs import PUSH_FIELDS, clean_apns, clean_fcm, clean_webpush, vapid_public_key
from channels.transports.push_webpush import WebPushTransport
from tests.channels.push_fakes import b64url, p8_key, service_account


def pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip


@pytest.fixture(scope="module")
def account():
    info, _ = service_account("https://oauth2.googleapis.com/token", "herald-app-123")
    return info


@pytest.fixture(scope="module")
def rsa_pem():
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


# --- FCM -------------------------------------------------------------------------------


def test_an_fcm_provider_takes_its_project_from_the_key(account):
    cleaned, errors = clean_fcm({}, {"service_account_json": json.dumps(account)})
    assert errors == {}
    assert cleaned == {"project_id": "herald-app-123", "base_url": "https://fcm.googleapis.com"}
    cleaned, errors = clean_fcm(
        {"project_id": "other-project", "base_url": "https://fcm.example.com",
         "token_url": "https://oauth.example.com/token"},
        {"service_account_json": json.dumps(account)},
    )  # fmt: skip
    assert errors == {} and cleaned == {
        "project_id": "other-project", "base_url": "https://fcm.example.com",
        "token_url": "https://oauth.example.com/token",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda a: "{not json", "This is not JSON"),
        (lambda a: json.dumps([a]), "not a service account key"),
        (lambda a: json.dumps({"project_info": {"project_id": "x"}, "client": []}),
         "google-services.json"),
        (lambda a: json.dumps({**a, "type": "authorized_user"}), "“authorized_user” key"),
        (lambda a: json.dumps({k: v for k, v in a.items() if k != "type"}), "not a key"),
        (lambda a: json.dumps({**a, "client_email": ""}), "no client_email"),
        (lambda a: json.dumps({**a, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                               "-----END PRIVATE KEY-----\n"}), "not a PEM private key"),
        (lambda a: json.dumps({**a, "private_key": pem(ec.generate_private_key(ec.SECP256R1()))}),
         "not an RSA key"),
        (lambda a: json.dumps({k: v for k, v in a.items() if k != "token_uri"}), "no token_uri"),
    ],
)  # fmt: skip
def test_a_key_that_is_not_a_service_account_says_what_it_is(account, change, said):
    _, errors = clean_fcm({"project_id": "herald-app-123"},
                          {"service_account_json": change(account)})  # fmt: skip
    assert set(errors) == {"service_account_json"}
    assert said in errors["service_account_json"]


def test_fcm_settings_name_their_field(account):
    _, errors = clean_fcm({}, {})
    assert set(errors) == {"service_account_json", "project_id"}
    assert "Generate new private key" in errors["service_account_json"]
    _, errors = clean_fcm(
        {"project_id": "Herald_App", "base_url": "fcm.googleapis.com", "token_url": "token"},
        {"service_account_json": json.dumps(account)},
    )
    assert set(errors) == {"project_id", "base_url", "token_url"}
    assert "lowercase letters" in errors["project_id"]


# --- APNs ------------------------------------------------------------------------------

APNS = {"team_id": "ABCDE12345", "key_id": "KEY9876543", "topic": "com.herald.shop",
        "environment": "sandbox"}  # fmt: skip


def test_an_apns_provider_gets_its_environments_host():
    key, _ = p8_key()
    cleaned, errors = clean_apns({**APNS, "team_id": "abcde12345"}, {"p8_key": key})
    assert errors == {}
    assert cleaned == {**APNS, "base_url": "https://api.sandbox.push.apple.com"}
    cleaned, _ = clean_apns({**APNS, "environment": "production"}, {"p8_key": key})
    assert cleaned["base_url"] == "https://api.push.apple.com"


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("team_id", "ABCDE1234", "10 letters and digits"),
        ("team_id", "", "Team ID"),
        ("key_id", "KEY98765432", "AuthKey_"),
        ("topic", "shop", "bundle id"),
        ("environment", "development", "production"),
        ("environment", "", "sandbox"),
        ("base_url", "api.push.apple.com", "a URL"),
    ],
)
def test_apns_settings_name_their_field(field, value, said):
    key, _ = p8_key()
    _, errors = clean_apns({**APNS, field: value}, {"p8_key": key})
    assert set(errors) == {field} and said in errors[field]


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("", "Give the .p8 key"),
        ("MIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg", "not a PEM private key"),
        ("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----", "not a PEM"),
        ("rsa", "not an EC P-256 key"),
        ("p384", "not an EC P-256 key"),
    ],
)
def test_a_p8_key_that_is_not_one_is_an_error_on_p8_key(rsa_pem, key, said):
    key = {"rsa": rsa_pem, "p384": pem(ec.generate_private_key(ec.SECP384R1()))}.get(key, key)
    _, errors = clean_apns(APNS, {"p8_key": key} if key else {})
    assert set(errors) == {"p8_key"} and said in errors["p8_key"]


# --- Web Push --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vapid():
    return ec.generate_private_key(ec.SECP256R1())


def test_a_webpush_provider_shows_the_public_key_browsers_subscribe_with(vapid):
    raw = b64url(vapid.private_numbers().private_value.to_bytes(32, "big"))
    der = b64url(vapid.private_bytes(serialization.Encoding.DER,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))  # fmt: skip
    subject = {"vapid_subject": "mailto:ops@herald.test"}
    results = [clean_webpush(subject, {"vapid_private_key": k}) for k in (pem(vapid), raw, der)]
    assert [errors for _, errors in results] == [{}, {}, {}]
    public = results[0][0]["vapid_public_key"]
    assert {cleaned["vapid_public_key"] for cleaned, _ in results} == {public}
    point = base64.urlsafe_b64decode(public + "=")
    assert len(point) == 65 and point[0] == 4  # the uncompressed P-256 point browsers take
    assert public == vapid_public_key(raw)
    assert (
        WebPushTransport(vapid_subject="https://herald.test", vapid_private_key=raw).public_key
        == public
    )
    cleaned, errors = clean_webpush(
        {"vapid_subject": "https://herald.test/contact", "vapid_public_key": public},
        {"vapid_private_key": pem(vapid)},
    )
    assert errors == {} and cleaned["vapid_subject"] == "https://herald.test/contact"


@pytest.mark.parametrize(
    "subject", ["ops@herald.test", "http://herald.test", "mailto:not-an-address", "", "https://"]
)
def test_a_vapid_subject_is_a_mailto_or_https_url(vapid, subject):
    _, errors = clean_webpush({"vapid_subject": subject}, {"vapid_private_key": pem(vapid)})
    assert set(errors) == {"vapid_subject"} and "mailto:" in errors["vapid_subject"]


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("", "Give the VAPID private key"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "not a PEM"),
        ("not*base64", "neither a PEM key nor a base64url"),
        (b64url(b"\x01" * 20), "not a VAPID private key"),
        ("rsa", "EC P-256"),
    ],
)
def test_a_vapid_key_that_is_not_one_is_an_error_on_vapid_private_key(rsa_pem, key, said):
    key = rsa_pem if key == "rsa" else key
    _, errors = clean_webpush({"vapid_subject": "mailto:ops@herald.test"},
                              {"vapid_private_key": key} if key else {})  # fmt: skip
    assert set(errors) == {"vapid_private_key"} and said in errors["vapid_private_key"]


def test_a_public_key_of_another_private_key_is_refused(vapid):
    other = vapid_public_key(pem(ec.generate_private_key(ec.SECP256R1())))
    _, errors = clean_webpush(
        {"vapid_subject": "mailto:ops@herald.test", "vapid_public_key": other},
        {"vapid_private_key": pem(vapid)},
    )
    assert (
        set(errors) == {"vapid_public_key"}
        and "not the private key's" in errors["vapid_public_key"]
    )


def test_every_cleaned_setting_and_checked_secret_is_a_declared_field(account, vapid):
    key, _ = p8_key()
    for kind, (values, secrets), clean in (
        ("fcm", ({}, {"service_account_json": json.dumps(account)}), clean_fcm),
        ("apns", (APNS, {"p8_key": key}), clean_apns),
        ("webpush", ({"vapid_subject": "mailto:a@b.test"}, {"vapid_private_key": pem(vapid)}),
         clean_webpush),
    ):  # fmt: skip
        cleaned, errors = clean(values, secrets)
        settings, secret_names = PUSH_FIELDS[kind]
        assert errors == {} and set(cleaned) <= set(settings) and set(secrets) <= set(secret_names)
