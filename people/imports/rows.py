"""Column mapping and the per-row check: one CSV row in, one staging row (or a reason) out.

This is the per-row CPU work of an import, so it is written for speed: the mapping is
compiled once into a plan of (column, slot, kind) steps and each row walks that plan.
"""

import json
import re
from dataclasses import dataclass

from people.attributes import (
    BUILTIN_ATTRIBUTES,
    KEY_PATTERN,
    AttributeTypeError,
    parse_text_value,
)
from people.models import BUILTIN_FIELD_LABELS, BUILTIN_FIELDS, AttributeType, Company, Person
from people.normalize import (
    InvalidAddress,
    InvalidTimeZone,
    normalize_email,
    normalize_phone,
    normalize_time_zone,
)

DEDUPE_KEYS = ["external_id", "email", "phone"]
IGNORE = "ignore"
ATTRIBUTE = "attribute"

# The columns of a staging row, in COPY order (see staging.py).
STAGE_COLUMNS = ["line", "key", *BUILTIN_FIELDS, "attributes"]
_SLOT = {name: i for i, name in enumerate(STAGE_COLUMNS[1:])}  # row tuple without `line`
_ATTRIBUTES_SLOT = _SLOT["attributes"]
FIELD_LABELS = BUILTIN_FIELD_LABELS
MAX_LENGTH = {name: Person._meta.get_field(name).max_length for name in BUILTIN_FIELDS[:-1]}
MAX_LENGTH["company"] = Company._meta.get_field("name").max_length
# Names a custom attribute may not take: they are built-in attributes of the rule tree.
RESERVED_KEYS = set(BUILTIN_ATTRIBUTES) | {"updated_at", "id", "tags", "audiences"}

TYPE_PHRASES = {
    AttributeType.NUMBER: "a number",
    AttributeType.BOOLEAN: "yes/no (true, false, yes, no, 1, 0)",
    AttributeType.DATE: "a date (YYYY-MM-DD)",
    AttributeType.DATETIME: "a date and time (ISO 8601, e.g. 2026-11-25T14:03:00Z)",
    AttributeType.LIST: "a list of texts separated by |",
    AttributeType.STRING: "a text",
}

# Hand-written on the hot path: Django's validate_email costs ~5 us a call. This pattern
# accepts only a strict subset of what it accepts (plain ASCII dot-atom @ host names, TLD
# of letters), so anything it passes is valid; everything else goes to normalize_email.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,63}"
)
# A cell starting with + or - is a formula unless it is a number or a phone number.
_NUMBERISH = re.compile(r"[+-][\d\s().,/-]*")
_FLOAT = re.compile(r"[+-]?(?:\d+[.,]\d*|[.,]\d+|\d+)(?:[eE][+-]?\d+)?")
_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n"}

# Hot path: phonenumbers.parse() spends most of its ~15 us on generic text handling
# (extensions, letters, RFC 3966, punctuation). A number already in canonical E.164 form
# ("+" and digits, as CRM exports write them) skips that: the steps below are parse()'s
# own steps for such a string, run with the library's functions, then the same validity
# check as normalize_phone. Anything else, and any number this path does not accept, goes
# through normalize_phone (which also words the error). tests/people prove both agree.
_CANONICAL_E164 = re.compile(r"\+[1-9]\d{6,14}")
try:
    from phonenumbers import PhoneMetadata, PhoneNumber, is_valid_number
    from phonenumbers.phonenumberutil import (
        ValidationResult,
        _extract_country_code,
        _maybe_strip_national_prefix_carrier_code,
        _test_number_length,
        region_code_for_country_code,
    )

    _NOT_A_LENGTH = (
        ValidationResult.TOO_SHORT,
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        ValidationResult.INVALID_LENGTH,
    )
except ImportError:  # a phonenumbers release that moved them: always the slow path
    _extract_country_code = None


def canonical_phone(text: str) -> str | None:
    """E.164 of a valid number written in canonical E.164, else None (not decided)."""
    if _extract_country_code is None or _CANONICAL_E164.fullmatch(text) is None:
        return None
    country_code, national = _extract_country_code(text[1:])
    if not country_code:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region_code_for_country_code(country_code)
    )
    if metadata is None:
        return None
    _carrier, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if _test_number_length(stripped, metadata) not in _NOT_A_LENGTH:
        national = stripped
    if len(national) < 2 or national[0] == "0":  # Italian leading zeros: the slow path
        return None
    if not is_valid_number(PhoneNumber(country_code=country_code, national_number=int(national))):
        return None
    return f"+{country_code}{national}"


_TEXT, _EMAIL, _PHONE, _TIME_ZONE = 0, 1, 2, 3
_KINDS = {"email": _EMAIL, "phone": _PHONE, "time_zone": _TIME_ZONE}
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RowError(ValueError):
    """Why one row cannot be imported (the sentence goes into the error report)."""


@dataclass(frozen=True)
class MappedColumn:
    column: int
    header: str
    target: str  # a built-in field, ATTRIBUTE or IGNORE
    key: str = ""  # attribute key
    type: str = ""  # attribute type
    new: bool = False  # the attribute is not defined yet in the workspace

    def as_dict(self) -> dict:
        data = {"column": self.column, "header": self.header, "target": self.target}
        if self.target == ATTRIBUTE:
            data.update(key=self.key, type=self.type, new=self.new)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "MappedColumn":
        return cls(
            column=int(data["column"]),
            header=str(data.get("header", "")),
            target=str(data["target"]),
            key=str(data.get("key", "")),
            type=str(data.get("type", "")),
            new=bool(data.get("new", False)),
        )


def apply_definitions(columns: list[MappedColumn], definitions: dict[str, str]) -> list:
    """The mapping with attribute types as the workspace defines them now: a defined
    attribute keeps its type (types are enforced), an undefined one is new."""
    result = []
    for c in columns:
        if c.target == ATTRIBUTE:
            if c.key in definitions:
                c = MappedColumn(c.column, c.header, ATTRIBUTE, c.key, definitions[c.key], False)
            else:
                c = MappedColumn(c.column, c.header, ATTRIBUTE, c.key, c.type, True)
        result.append(c)
    return result


def attribute_key_for(header: str, index: int) -> str:
    """A custom attribute key made from a column header ('Signup date' -> 'signup_date');
    a header with no Latin letter or digit (e.g. Cyrillic) gives column_<n>."""
    key = re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")[:100]
    if not key:
        return f"column_{index + 1}"
    if not key[0].isalpha():
        key = f"col_{key}"[:100]
    return key


def mapping_problems(columns: list[MappedColumn], *, dedupe: str) -> list[str]:
    """What makes a mapping unusable, as sentences; empty when it can run."""
    problems = []
    seen: dict[str, str] = {}
    for c in columns:
        if c.target == IGNORE:
            continue
        if c.target == ATTRIBUTE:
            name = f"attribute {c.key}"
            if not KEY_PATTERN.match(c.key):
                problems.append(
                    f"“{c.key}” (column “{c.header}”) is not a usable attribute name: start "
                    "with a letter, then letters, digits, spaces, _ . or -, up to 100."
                )
            elif c.key in RESERVED_KEYS:
                problems.append(
                    f"“{c.key}” (column “{c.header}”) is a built-in field; map the column to "
                    "it directly or choose another attribute name."
                )
            if c.type not in AttributeType.values:
                problems.append(f"Choose a type for attribute “{c.key}”.")
        elif c.target in FIELD_LABELS:
            name = FIELD_LABELS[c.target]
        else:
            problems.append(f"Column “{c.header}” is mapped to an unknown field “{c.target}”.")
            continue
        if name in seen:
            problems.append(
                f"Columns “{seen[name]}” and “{c.header}” are both mapped to {name}; "
                "map one of them only."
            )
        seen[name] = c.header
    targets = {c.target for c in columns}
    if dedupe not in DEDUPE_KEYS:
        problems.append("Choose how to match people: by external ID, email or phone.")
    elif dedupe not in targets:
        problems.append(
            f"People are matched by {FIELD_LABELS[dedupe]}, but no column is mapped to it."
        )
    return problems


def is_formula(text: str) -> bool:
    """A cell a spreadsheet would run as a formula (CSV injection): = @ or a non-numeric
    + / - at its start."""
    first = text[0]
    if first in "=@":
        return True
    if first in "+-":
        return _NUMBERISH.fullmatch(text) is None
    return False


def _is_number(text: str) -> bool:
    """A number, but not a code that only looks like one: "007", "+44...", a 20-digit id."""
    if not _FLOAT.fullmatch(text) or text[0] == "+":
        return False
    digits = text.lstrip("-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        return False
    return len(digits) <= 15


def infer_text_type(values: list[str]) -> str:
    """The type a column's sample cells suggest for a new custom attribute."""
    cells = [v.strip() for v in values if v and v.strip()]
    if not cells:
        return AttributeType.STRING
    if all(_is_number(c) for c in cells):
        return AttributeType.NUMBER
    if all(c.lower() in _BOOL_WORDS for c in cells):
        return AttributeType.BOOLEAN
    kinds = set()
    for c in cells:
        try:
            parse_text_value(c, AttributeType.DATE)
            kinds.add(AttributeType.DATE)
            continue
        except AttributeTypeError:
            pass
        try:
            parse_text_value(c, AttributeType.DATETIME)
            kinds.add(AttributeType.DATETIME)
        except AttributeTypeError:
            return AttributeType.STRING
    return AttributeType.DATETIME if AttributeType.DATETIME in kinds else AttributeType.DATE


class RowChecker:
    """Validates and normalizes rows for one mapping.

    check(cells) returns the staging row without its line number: (key, external_id,
    email, phone, first_name, last_name, gender, country, city, address, time_zone,
    company, attributes_json), None for an empty cell; or raises RowError with every
    reason the row has. Empty cells never clear a value: they stage as NULL.
    """

    def __init__(self, *, columns: list[MappedColumn], width: int, dedupe: str,
                 phone_region: str = "", header: bool = True):  # fmt: skip
        self.width = width
        self.dedupe = dedupe
        self.phone_region = phone_region or None
        self.header = header
        self.key_slot = _SLOT[dedupe]
        self.fields = []
        self.attributes = []
        for c in columns:
            if c.target == IGNORE:
                continue
            if c.target == ATTRIBUTE:
                self.attributes.append((c.column, c.key, c.type, c.header))
                continue
            kind = _KINDS.get(c.target, _TEXT)
            self.fields.append((c.column, _SLOT[c.target], kind, MAX_LENGTH[c.target], c.header))
        self.empty = [None] * (len(STAGE_COLUMNS) - 1)

    def _width_error(self, cells: list[str]) -> str | None:
        n = len(cells)
        if n > self.width and not any(c.strip() for c in cells[self.width :]):
            return None  # trailing empty cells (a separator at the end of the line)
        where = "the header has" if self.header else "the first row has"
        return f"the row has {n} cells where {where} {self.width}"

    def check(self, cells: list[str]) -> tuple:
        errors = None
        if len(cells) != self.width:
            problem = self._width_error(cells)
            if problem:
                raise RowError(problem)
        out = self.empty.copy()
        for column, slot, kind, limit, header in self.fields:
            text = cells[column].strip()
            if not text:
                continue
            if text[0] in "=@+-" and is_formula(text):
                errors = errors or []
                errors.append(_formula_reason(header, text))
                continue
            if kind == _TEXT:
                if len(text) > limit:
                    errors = errors or []
                    errors.append(f"{header}: longer than {limit} characters")
                    continue
                out[slot] = text
            elif kind == _EMAIL:
                email = text.lower()
                if len(email) > limit or _PLAIN_EMAIL.fullmatch(email) is None:
                    try:
                        email = normalize_email(text)
                    except InvalidAddress as e:
                        errors = errors or []
                        errors.append(f"{header}: {e}")
                        continue
                    if len(email) > limit:
                        errors = errors or []
                        errors.append(f"{header}: longer than {limit} characters")
                        continue
                out[slot] = email
            elif kind == _TIME_ZONE:
                try:
                    out[slot] = normalize_time_zone(text)
                except InvalidTimeZone as e:
                    errors = errors or []
                    errors.append(f"{header}: {e}")
            else:
                phone = canonical_phone(text)
                if phone is not None:
                    out[slot] = phone
                    continue
                try:
                    out[slot] = normalize_phone(text, default_region=self.phone_region)
                except InvalidAddress as e:
                    errors = errors or []
                    errors.append(f"{header}: {e}")
        attributes = None
        for column, key, type_, header in self.attributes:
            text = cells[column].strip()
            if not text:
                continue
            if text[0] in "=@+-" and is_formula(text):
                errors = errors or []
                errors.append(_formula_reason(header, text))
                continue
            if type_ == AttributeType.STRING:
                value = text
            else:
                try:
                    value = parse_text_value(text, type_)
                except AttributeTypeError:
                    errors = errors or []
                    errors.append(
                        f"{header}: “{_short(text)}” is not {TYPE_PHRASES[type_]} "
                        f"(attribute “{key}” is of type {type_})"
                    )
                    continue
            if attributes is None:
                attributes = {}
            attributes[key] = value
        if out[self.key_slot] is None and not errors:
            errors = [
                f"{FIELD_LABELS[self.dedupe]} is empty: people are matched on it, so every "
                "row needs one"
            ]
        if errors:
            raise RowError(
                "; ".join(e.rstrip(".") for e in errors) if len(errors) > 1 else errors[0]
            )
        out[0] = out[self.key_slot]
        if attributes is not None:
            out[_ATTRIBUTES_SLOT] = _json(attributes)
        return tuple(out)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _formula_reason(header: str, text: str) -> str:
    return (
        f"{header}: “{_short(text)}” starts like a spreadsheet formula ({text[0]}); "
        "formula cells are refused, remove the leading sign"
    )
