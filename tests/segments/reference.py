"""A second, independent reading of shared/API.md "Rule tree", in plain Python.

It evaluates raw JSON trees against plain person records, one person at a time, the slow
and obvious way, so the differential test can hold the SQL compiler to the contract. It
shares no code with segments/rules; where the contract leaves a choice open it follows the
choices documented in segments/rules/schema.py (dates compare on their date part, a where
filter compares a property as the type of the value it gives, an empty list is empty).
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

BUILTIN_TEXT = {
    "external_id", "email", "phone", "first_name", "last_name", "gender",
    "country", "city", "address", "company",
}  # fmt: skip
NEGATIONS = {"is_not": "is", "not_in": "in", "not_contains": "contains", "is_empty": "is_not_empty"}
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class Event:
    name: str
    occurred_at: datetime
    properties: dict = field(default_factory=dict)


@dataclass
class PersonRecord:
    key: str
    created_at: datetime
    builtins: dict = field(default_factory=dict)  # text columns; "" when not set
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    tags: set = field(default_factory=set)


@dataclass
class Context:
    now: datetime
    zone: ZoneInfo
    types: dict  # custom attribute -> declared type

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()


def evaluate(node: dict, person: PersonRecord, ctx: Context) -> bool:
    if "all" in node:
        return all(evaluate(child, person, ctx) for child in node["all"])
    if "any" in node:
        return any(evaluate(child, person, ctx) for child in node["any"])
    if "not" in node:
        return not evaluate(node["not"], person, ctx)
    if "attribute" in node:
        return _attribute(node, person, ctx)
    if "event" in node:
        return _event(node, person, ctx)
    if "tag" in node:
        has = node["tag"].lower() in {tag.lower() for tag in person.tags}
        return has if node["op"] == "has" else not has
    raise ValueError(f"the reference does not know {node}")


def _attribute(node, person, ctx) -> bool:
    name = node["attribute"]
    if name == "created_at":
        return _check(node["op"], node.get("value"), person.created_at, "datetime", ctx)
    if name in BUILTIN_TEXT:
        stored = person.builtins.get(name, "")
        return _check(node["op"], node.get("value"), stored or None, "string", ctx)
    return _check(node["op"], node.get("value"), person.attributes.get(name), ctx.types[name], ctx)


def _check(op, value, stored, type_, ctx, *, untyped=False) -> bool:
    """`stored op value`; None is a person without the value."""
    if op in NEGATIONS:
        return not _check(NEGATIONS[op], value, stored, type_, ctx, untyped=untyped)
    if stored is None:
        return False
    if op == "is_not_empty":
        return stored not in ("", [])
    if type_ in ("date", "datetime"):
        return _check_date(op, value, _date_part(stored, ctx.zone), ctx)
    if op == "is":
        return _same(stored, value, type_)
    if op == "in":
        return any(_same(stored, item, type_) for item in value)
    if op in ("lt", "lte", "gte", "gt"):
        if not _is_number(stored):
            return False
        return {"lt": stored < value, "lte": stored <= value, "gte": stored >= value,
                "gt": stored > value}[op]  # fmt: skip
    text = value.lower()
    if op == "contains" and isinstance(stored, list) and (type_ == "list" or untyped):
        return any(isinstance(item, str) and item.lower() == text for item in stored)
    if not isinstance(stored, str):
        return False
    return {
        "starts_with": stored.lower().startswith(text),
        "ends_with": stored.lower().endswith(text),
        "contains": text in stored.lower(),
    }[op]


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(stored, value, type_) -> bool:
    if type_ == "number":
        return _is_number(stored) and stored == value
    if type_ == "boolean":
        return isinstance(stored, bool) and stored == value
    return isinstance(stored, str) and stored == value


def _date_part(stored, zone) -> date | None:
    """The calendar day of a stored date/datetime in the workspace zone, else None."""
    if isinstance(stored, datetime):
        return stored.astimezone(zone).date()
    if not isinstance(stored, str) or not ISO_DAY.match(stored):
        return None
    try:
        moment = datetime.fromisoformat(stored)
    except ValueError:
        return None
    if moment.tzinfo is None:  # wall-clock time of the workspace
        return moment.date()
    return moment.astimezone(zone).date()


def _check_date(op, value, day: date | None, ctx) -> bool:
    if day is None:
        return False
    today = ctx.today
    if op in ("was", "was_within", "was_more_than", "will_be_in", "will_be_within",
              "will_be_more_than"):  # fmt: skip
        ahead = _move(today, value["amount"], value["unit"])
        back = _move(today, -value["amount"], value["unit"])
        return {
            "will_be_in": day == ahead,
            "was": day == back,
            "will_be_within": today <= day <= ahead,
            "was_within": back <= day <= today,
            "will_be_more_than": day > ahead,
            "was_more_than": day < back,
        }[op]
    if op == "in":
        return any(day == date.fromisoformat(item) for item in value)
    other = date.fromisoformat(value)
    return {
        "is": day == other,
        "lt": day < other,
        "before": day < other,
        "lte": day <= other,
        "until": day <= other,
        "gte": day >= other,
        "since": day >= other,
        "gt": day > other,
        "after": day > other,
    }[op]


def _move(day: date, amount: int, unit: str) -> date:
    if unit == "days":
        return day + timedelta(days=amount)
    if unit == "weeks":
        return day + timedelta(days=7 * amount)
    # calendar months: step month by month, then clamp the day to the month's last day
    year, month = day.year, day.month
    step = 1 if amount > 0 else -1
    for _ in range(abs(amount)):
        month += step
        if month == 13:
            year, month = year + 1, 1
        elif month == 0:
            year, month = year - 1, 12
    last_day = 31
    while True:
        try:
            return date(year, month, min(day.day, last_day))
        except ValueError:
            last_day -= 1


def _event(node, person, ctx) -> bool:
    count = sum(
        1
        for event in person.events
        if event.name == node["event"]
        and _in_window(event.occurred_at, node.get("time", {"op": "any_time"}), ctx.now)
        and all(_where(where, event.properties, ctx) for where in node.get("where", []))
    )
    rule = node.get("count", {"op": "gte", "value": 1})
    n = rule["value"]
    return {"eq": count == n, "lt": count < n, "lte": count <= n, "gte": count >= n,
            "gt": count > n}[rule["op"]]  # fmt: skip


def _in_window(moment: datetime, window: dict, now: datetime) -> bool:
    if window["op"] == "any_time":
        return True
    unit = timedelta(**{window["unit"]: 1})
    if window["op"] == "within_last":
        return moment >= now - window["amount"] * unit
    if window["op"] == "before_last":
        return moment < now - window["amount"] * unit
    return now - window["to"] * unit <= moment <= now - window["from"] * unit


def _where(where: dict, properties: dict, ctx) -> bool:
    op, value = where["op"], where.get("value")
    return _check(op, value, properties.get(where["property"]), _value_type(op, value), ctx,
                  untyped=True)  # fmt: skip


def _value_type(op, value) -> str | None:
    """A property is compared as the type of the value the filter gives."""
    if op in ("is_empty", "is_not_empty"):
        return None
    if op in ("starts_with", "ends_with", "contains", "not_contains"):
        return "string"
    if isinstance(value, dict) or op in ("before", "until", "since", "after"):
        return "date"
    values = value if isinstance(value, list) else [value]
    kinds = {_kind(item) for item in values}
    if kinds == {"date", "string"}:
        return "string"
    (kind,) = kinds
    return kind


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    try:
        if ISO_DAY.fullmatch(value) and date.fromisoformat(value):
            return "date"
    except ValueError:
        pass
    return "string"
