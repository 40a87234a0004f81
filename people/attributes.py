"""Custom attribute types: inference on first sight and enforcement afterwards.

Inference (shared/API.md): a JSON number is a number, true/false a boolean, an array a list,
a string YYYY-MM-DD a date, an ISO 8601 date-time string a datetime, any other string a
string. Once typed, a value of another type is refused (an integer is a valid number, a
date is a valid datetime); null clears the attribute.
"""

import re
from datetime import date, datetime

from people.models import AttributeType

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,99}$")


class AttributeTypeError(ValueError):
    pass


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def infer_type(value) -> str | None:
    """The type a first value implies, or None for null (which types nothing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | float):
        return AttributeType.NUMBER
    if isinstance(value, list):
        return AttributeType.LIST
    if isinstance(value, str):
        if _is_date(value):
            return AttributeType.DATE
        if _is_datetime(value):
            return AttributeType.DATETIME
        return AttributeType.STRING
    raise AttributeTypeError(
        "an attribute value must be a string, number, boolean, list of strings or null; "
        f"got {type(value).__name__}"
    )


def check_value(key: str, value, declared: str):
    """The value to store for `key` of type `declared`, or AttributeTypeError with the reason."""
    if value is None:
        return None
    ok = False
    if declared == AttributeType.STRING:
        ok = isinstance(value, str)
    elif declared == AttributeType.NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif declared == AttributeType.BOOLEAN:
        ok = isinstance(value, bool)
    elif declared == AttributeType.DATE:
        ok = isinstance(value, str) and _is_date(value)
    elif declared == AttributeType.DATETIME:
        ok = isinstance(value, str) and (_is_datetime(value) or _is_date(value))
    elif declared == AttributeType.LIST:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        label = AttributeType(declared).label.lower()
        raise AttributeTypeError(
            f"attribute “{key}” is of type {declared} ({label}); {value!r} is not"
        )
    return value


def parse_text_value(text: str, declared: str):
    """Turn a text cell (CSV import, UI form) into a value of `declared` type, or raise."""
    text = text.strip()
    if text == "":
        return None
    if declared == AttributeType.NUMBER:
        try:
            number = float(text.replace(",", ".")) if any(c in text for c in ".,eE") else int(text)
        except ValueError:
            raise AttributeTypeError(f"“{text}” is not a number") from None
        return number
    if declared == AttributeType.BOOLEAN:
        lowered = text.lower()
        if lowered in {"true", "yes", "1", "y"}:
            return True
        if lowered in {"false", "no", "0", "n"}:
            return False
        raise AttributeTypeError(f"“{text}” is not yes/no (true, false, yes, no, 1, 0)")
    if declared == AttributeType.LIST:
        return [part.strip() for part in text.split("|") if part.strip()]
    return check_value("value", text, declared)
