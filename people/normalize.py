"""Normalizing addresses before they are stored or matched.

email: trimmed and lower-cased, and checked for shape; phone: E.164 via `phonenumbers`.
Each function returns the normalized value or raises InvalidAddress with a sentence a
person can act on. A person's time zone is normalized here too (InvalidTimeZone).
"""

import functools
import zoneinfo

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accounts.text import has_forbidden_character


class InvalidAddress(ValueError):
    pass


def normalize_email(value: str) -> str:
    email = (value or "").strip().lower()
    if not email:
        raise InvalidAddress("The email address is empty.")
    try:
        validate_email(email)
    except ValidationError:
        shown = value.strip()
        shown = shown if len(shown) <= 80 else shown[:77] + "…"
        raise InvalidAddress(f"“{shown}” is not a valid email address.") from None
    return email


def normalize_phone(value: str, *, default_region: str | None = None) -> str:
    """E.164 (+447700900123). Numbers without a leading + need `default_region` (e.g. GB)."""
    raw = (value or "").strip()
    if not raw:
        raise InvalidAddress("The phone number is empty.")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise InvalidAddress(
            f"“{value.strip()}” is not a phone number (write it with its country code, "
            "e.g. +44 7700 900123)."
        ) from None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"“{value.strip()}” is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_push_token(value: str) -> str:
    token = (value or "").strip()
    if not token:
        raise InvalidAddress("The push token is empty.")
    if len(token) > 512:
        raise InvalidAddress("The push token is longer than 512 characters.")
    return token


NORMALIZERS = {"email": normalize_email, "sms": normalize_phone, "push": normalize_push_token}


def normalize_address(channel: str, value: str) -> str:
    try:
        normalize = NORMALIZERS[channel]
    except KeyError:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).") from None
    if isinstance(value, str) and has_forbidden_character(value):
        # Never an address, and PostgreSQL could neither store nor look it up.
        raise InvalidAddress(
            "The address contains a character that is not allowed (NUL or a lone surrogate)."
        )
    return normalize(value)


class InvalidTimeZone(ValueError):
    pass


# Names of the zone database that are not places: the machine's own zone and tzdata's
# placeholder for "not configured".
_NOT_ZONES = {"localtime", "posixrules", "Factory"}


@functools.cache
def _zones() -> dict[str, str]:
    """lower-cased IANA name -> its canonical spelling, from the installed zone database."""
    return {name.lower(): name for name in zoneinfo.available_timezones() - _NOT_ZONES}


def normalize_time_zone(value: str) -> str:
    """The canonical spelling of an IANA time zone name ("europe/paris" -> "Europe/Paris"),
    "" for an empty value (the person then lives in the workspace's zone), or
    InvalidTimeZone. Hot path of the contact import: one dict lookup a value."""
    text = (value or "").strip()
    if not text:
        return ""
    name = _zones().get(text.lower())
    if name is None:
        shown = text if len(text) <= 80 else text[:77] + "…"
        raise InvalidTimeZone(
            f"“{shown}” is not a known time zone: write an IANA name such as Europe/Paris "
            "or America/New_York."
        )
    return name


def validate_person_time_zone(value: str) -> None:
    """Model validator (admin forms): a stored zone is empty or canonically spelt."""
    try:
        name = normalize_time_zone(value)
    except InvalidTimeZone as e:
        raise ValidationError(str(e)) from None
    if name != value:
        raise ValidationError(f"Write the time zone as “{name}”.")
