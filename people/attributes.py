"""Custom attribute types: inference on first sight and enforcement afterwards.

Inference (shared/API.md): a JSON number is a number, true/false a boolean, an array a list,
a string YYYY-MM-DD a date, an ISO 8601 date-time string a datetime, any other string a
string. Once typed, a value of another type is refused (an integer is a valid number, a
date is a valid datetime); null clears the attribute.
"""

import json
import math
import re
from datetime import date, datetime

from accounts.text import FORBIDDEN_CHARACTERS, has_forbidden_character
from people.models import BUILTIN_FIELD_LABELS, BUILTIN_FIELDS, AttributeType

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,99}$")
KEY_RULE = (
    "a name has 1-100 characters: a letter or _ first, then letters, digits, spaces, _ . or -"
)
NOT_FINITE = "is not a number JSON can hold (NaN and Infinity are not); send a finite number"
NOT_STORABLE = "contains a character that is not allowed (NUL or a lone surrogate)"

# The built-in attributes a rule tree can name, with their types and labels: Person's text
# fields (people.models.BUILTIN_FIELDS) and created_at. The schema, the compiler, both
# rule builders and the descriptions all read these two.
BUILTIN_ATTRIBUTES = {name: AttributeType.STRING for name in BUILTIN_FIELDS} | {
    "created_at": AttributeType.DATETIME
}
BUILTIN_LABELS = BUILTIN_FIELD_LABELS | {"created_at": "Created at"}


class AttributeTypeError(ValueError):
    pass


def key_problem(key, *, known=()) -> str | None:
    """Why `key` cannot name a custom attribute, or None when it can: it must match
    KEY_PATTERN (what segment rules and the contact import accept), unless it is already
    in the workspace's catalogue (`known`), which keeps older keys writable."""
    if isinstance(key, str) and (key in known or KEY_PATTERN.match(key)):
        return None
    return f"attribute name {key!r} is not allowed: {KEY_RULE}"


def unstorable(value, path: str) -> tuple[str, str] | None:
    """(path, reason) of the first part of a JSON value that cannot be stored: a NaN or
    infinite number (Python's json reads them; JSON and PostgreSQL have none) or text
    holding NUL or a lone surrogate, in a value or a key. None when all of it can be.
    Paths are dotted: properties.items.0.price."""
    # Hot path (every event's properties): C's json.dumps refuses NaN and Infinity and
    # writes NUL and surrogates as escapes; only a suspect value is walked for the path.
    try:
        text = json.dumps(value, allow_nan=False)
    except (ValueError, TypeError):
        pass
    else:
        if "\\u0000" not in text and "\\ud" not in text:
            return None
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where, NOT_FINITE
        if isinstance(item, str) and has_forbidden_character(item):
            return where, NOT_STORABLE
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                name = f"{where}.{FORBIDDEN_CHARACTERS.sub(chr(0xFFFD), str(key))}"
                if isinstance(key, str) and has_forbidden_character(key):
                    return name, f"the name {NOT_STORABLE}"
                children.append((name, child))
            stack.extend(reversed(children))  # first things first
        elif isinstance(item, list):
            stack.extend(reversed([(f"{where}.{i}", child) for i, child in enumerate(item)]))
    return None


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
    if isinstance(value, float) and not math.isfinite(value):
        raise AttributeTypeError(f"the value {NOT_FINITE}")
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
        if ok and not math.isfinite(value):
            raise AttributeTypeError(f"attribute “{key}” {NOT_FINITE}")
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
        if not math.isfinite(number):  # "1e999" reads as infinity
            raise AttributeTypeError(f"“{text}” is not a finite number")
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
